"""The Partner Center sandbox's Webhooks API, certificates and signed dispatch.

The sandbox side is a FastAPI app with the identity and webhooks routers (in-process, through
httpx's ASGI transport). The receiver of callbacks is an httpx MockTransport handler that records
each request and answers from a script. Time is a ManualClock: retries, throttling, retention
and faults are driven by advancing it and calling `drain()`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store
from fastapi import FastAPI

from cosell.clock import ManualClock
from cosell_sandbox.partnercenter.certs import DispatchCertificates
from cosell_sandbox.partnercenter.errors import install_error_handlers
from cosell_sandbox.partnercenter.events import ReferralEventName, WebhookFaults
from cosell_sandbox.partnercenter.identity import REFERRALS_AUDIENCE, WEBHOOKS_AUDIENCE, Identity
from cosell_sandbox.partnercenter.webhooks import (
    DOCUMENTED_EVENTS,
    MAX_ATTEMPTS,
    WebhookService,
    format_change_date,
    retry_delay,
)

BASE = "http://pc.sandbox.test"
HOOK_URL = "https://receiver.example/partner-center/webhooks"
REFERRAL_ID = "8b1a5f4e-6c4b-4e9a-9f38-2c9e5d1d1a01"
REFERRAL_EVENTS: list[ReferralEventName] = [
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
]


@dataclass
class Receiver:
    """Records callbacks; answers each with the next scripted status (or raises it)."""

    script: list[int | Exception] = field(default_factory=list)
    default: int = 200
    requests: list[httpx.Request] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        outcome = self.script.pop(0) if self.script else self.default
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome, text="thanks" if outcome < 300 else "nope")

    def events(self) -> list[str]:
        return [json.loads(r.content)["EventName"] for r in self.requests]


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def certificates() -> DispatchCertificates:
    return DispatchCertificates.generate(ManualClock())


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def identity(clock: ManualClock, signing_key: rsa.RSAPrivateKey) -> Identity:
    return Identity(clock, base_url=BASE, rng=random.Random(1), signing_key=signing_key)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def service(
    clock: ManualClock,
    identity: Identity,
    receiver: Receiver,
    certificates: DispatchCertificates,
) -> AsyncIterator[WebhookService]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as outbound:
        yield WebhookService(
            clock,
            base_url=BASE,
            identity=identity,
            rng=random.Random(2),
            http_client=outbound,
            certificates=certificates,
        )


def make_app(identity: Identity, service: WebhookService) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(identity.router)
    app.include_router(service.router)
    return app


@pytest.fixture
async def client(identity: Identity, service: WebhookService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(identity, service))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        token = await app_token(http, identity, WEBHOOKS_AUDIENCE)
        http.headers["Authorization"] = f"Bearer {token}"
        yield http


async def app_token(http: httpx.AsyncClient, identity: Identity, audience: str) -> str:
    response = await http.post(
        f"/{identity.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": identity.client_id,
            "client_secret": identity.client_secret,
            "scope": f"{audience}/.default",
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def register(
    client: httpx.AsyncClient, events: list[str] | None = None, **extra: object
) -> httpx.Response:
    body = {"WebhookUrl": HOOK_URL, "WebhookEvents": events or REFERRAL_EVENTS, **extra}
    response = await client.post("/webhooks/v1/registration", json=body)
    assert response.status_code == 200, response.text
    return response


def verify_callback(
    request: httpx.Request, leaf_der: bytes, ca_der: bytes, header: str = "authorization"
) -> x509.Certificate:
    """What a receiver does (spec §4.4); raises if anything does not hold."""
    scheme, _, signature = request.headers[header].partition(" ")
    assert scheme == "Signature"
    assert request.headers["x-ms-signature-algorithm"] == "rsa-sha256"
    leaf = x509.load_der_x509_certificate(leaf_der)
    ca = x509.load_der_x509_certificate(ca_der)
    verifier = (
        PolicyBuilder()
        .store(Store([ca]))
        .time(datetime.now(UTC))
        .build_server_verifier(x509.DNSName("pcnotifications-dispatch.microsoft.com"))
    )
    chain = verifier.verify(leaf, [])
    assert chain[-1] == ca
    organisation = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert organisation == "Microsoft Corporation"
    public_key = leaf.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(
        base64.b64decode(signature), request.content, padding.PKCS1v15(), hashes.SHA256()
    )
    return leaf


async def served_certificates(
    client: httpx.AsyncClient, request: httpx.Request
) -> tuple[bytes, bytes]:
    leaf = await client.get(request.headers["x-ms-certificate-url"])
    ca = await client.get("/cert/sandbox-root-ca.cer")
    assert leaf.status_code == ca.status_code == 200
    return leaf.content, ca.content


# -- the Webhooks API ---------------------------------------------------------------------------


async def test_events_list_and_correlation_headers(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/webhooks/v1/registration/events",
        headers={"MS-CorrelationId": "c0ffee00-0000-4000-8000-000000000001", "MS-RequestId": "r-1"},
    )
    assert response.status_code == 200
    assert response.json() == list(DOCUMENTED_EVENTS)
    assert set(REFERRAL_EVENTS) <= set(response.json())
    assert "test-created" in response.json()
    assert response.headers["ms-correlationid"] == "c0ffee00-0000-4000-8000-000000000001"
    assert response.headers["ms-requestid"] == "r-1"
    fresh = await client.get("/webhooks/v1/registration/events")
    assert re.fullmatch(r"[0-9a-f-]{36}", fresh.headers["ms-correlationid"])
    assert re.fullmatch(r"[0-9a-f-]{36}", fresh.headers["ms-requestid"])


async def test_the_api_needs_a_webhooks_token(
    client: httpx.AsyncClient, identity: Identity
) -> None:
    anonymous = await client.get(
        "/webhooks/v1/registration/events",
        headers={"Authorization": "", "MS-CorrelationId": "abc"},
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    assert anonymous.headers["ms-correlationid"] == "abc"
    referrals_token = await app_token(client, identity, REFERRALS_AUDIENCE)
    wrong = await client.get(
        "/webhooks/v1/registration", headers={"Authorization": f"Bearer {referrals_token}"}
    )
    assert wrong.status_code == 401
    assert WEBHOOKS_AUDIENCE in wrong.json()["error"]["message"]
    # A user (app+user) token for the Webhooks API is fine too.
    user = await client.post(
        f"/{identity.tenant_id}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": identity.client_id,
            "client_secret": identity.client_secret,
            "refresh_token": identity.refresh_token,
            "resource": WEBHOOKS_AUDIENCE,
        },
    )
    ok = await client.get(
        "/webhooks/v1/registration/events",
        headers={"Authorization": f"Bearer {user.json()['access_token']}"},
    )
    assert ok.status_code == 200


async def test_registration_lifecycle(client: httpx.AsyncClient) -> None:
    missing = await client.get("/webhooks/v1/registration")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "itemNotFound"
    assert "POST /webhooks/v1/registration" in missing.json()["error"]["message"]

    created = (await register(client, ["referral-created", "referral-created"])).json()
    assert set(created) >= {"SubscriberId", "WebhookUrl", "WebhookEvents"}
    assert created["WebhookUrl"] == HOOK_URL
    assert created["WebhookEvents"] == ["referral-created"]

    again = await client.post(
        "/webhooks/v1/registration",
        json={"WebhookUrl": HOOK_URL, "WebhookEvents": ["referral-updated"]},
    )
    assert again.status_code == 409
    assert "PUT /webhooks/v1/registration" in again.json()["error"]["message"]

    shown = (await client.get("/webhooks/v1/registration")).json()
    assert shown["WebhookUrl"] == HOOK_URL
    assert shown["WebhookEvents"] == ["referral-created"]

    # Keys are case-insensitive; PUT overwrites URL and events and keeps the subscriber.
    updated = await client.put(
        "/webhooks/v1/registration",
        json={
            "webhookUrl": "http://other.example:8080/hook",
            "webhookEvents": ["referral-updated", "test-created"],
            "signatureTokenToMsSignatureHeader": True,
        },
    )
    assert updated.status_code == 200
    body = updated.json()
    assert body["SubscriberId"] == created["SubscriberId"]
    assert body["WebhookUrl"] == "http://other.example:8080/hook"
    assert body["WebhookEvents"] == ["referral-updated", "test-created"]
    assert body["SignatureTokenToMsSignatureHeader"] is True
    assert (await client.get("/webhooks/v1/registration")).json() == body

    deleted = await client.delete("/control/webhooks/registration")
    assert deleted.status_code == 204
    assert (await client.get("/webhooks/v1/registration")).status_code == 404


async def test_put_creates_when_nothing_is_registered(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/webhooks/v1/registration",
        json={"WebhookUrl": HOOK_URL, "WebhookEvents": ["referral-created"]},
    )
    assert response.status_code == 200
    assert (await client.get("/webhooks/v1/registration")).status_code == 200


@pytest.mark.parametrize(
    ("content", "target", "text"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[]", None, "Send a JSON object"),
        (b'{"WebhookEvents": ["referral-created"]}', "WebhookUrl", "WebhookUrl is required"),
        (
            b'{"WebhookUrl": "/relative", "WebhookEvents": ["referral-created"]}',
            "WebhookUrl",
            "absolute http(s) URL",
        ),
        (
            b'{"WebhookUrl": "ftp://x.example/h", "WebhookEvents": ["referral-created"]}',
            "WebhookUrl",
            "absolute http(s) URL",
        ),
        (
            b'{"WebhookUrl": "https://", "WebhookEvents": ["referral-created"]}',
            "WebhookUrl",
            "absolute http(s) URL",
        ),
        (
            b'{"WebhookUrl": "https://x.example:99999/h", "WebhookEvents": ["referral-created"]}',
            "WebhookUrl",
            "invalid port",
        ),
        (b'{"WebhookUrl": "https://x.example/h"}', "WebhookEvents", "WebhookEvents is required"),
        (
            b'{"WebhookUrl": "https://x.example/h", "WebhookEvents": []}',
            "WebhookEvents",
            "non-empty",
        ),
        (
            b'{"WebhookUrl": "https://x.example/h", "WebhookEvents": [3]}',
            "WebhookEvents",
            "non-empty",
        ),
        (
            b'{"WebhookUrl": "https://x.example/h", "WebhookEvents": ["referral-created", "referral-deleted"]}',
            "WebhookEvents",
            "Unknown webhook event(s): referral-deleted",
        ),
        (
            b'{"WebhookUrl": "https://x.example/h", "WebhookEvents": ["referral-created"], "SignatureTokenToMsSignatureHeader": "yes"}',
            "SignatureTokenToMsSignatureHeader",
            "true or false",
        ),
    ],
)
async def test_bad_registrations_are_refused_with_a_clear_message(
    client: httpx.AsyncClient, content: bytes, target: str | None, text: str
) -> None:
    for method in ("POST", "PUT"):
        response = await client.request(
            method,
            "/webhooks/v1/registration",
            content=content,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalidRequest"
        assert error["target"] == target
        assert text in error["message"]
    assert (await client.get("/webhooks/v1/registration")).status_code == 404


# -- validation events --------------------------------------------------------------------------


async def test_validation_event_needs_test_created(client: httpx.AsyncClient) -> None:
    none = await client.post("/webhooks/v1/registration/validationEvents")
    assert none.status_code == 400
    assert "No webhook registration" in none.json()["error"]["message"]
    await register(client, ["referral-created"])
    without = await client.post("/webhooks/v1/registration/validationEvents")
    assert without.status_code == 400
    assert "test-created" in without.json()["error"]["message"]


async def test_validation_event_is_sent_signed_and_its_result_kept_7_days(
    client: httpx.AsyncClient,
    service: WebhookService,
    receiver: Receiver,
    clock: ManualClock,
    identity: Identity,
) -> None:
    await register(client, ["test-created"])
    sent = await client.post("/webhooks/v1/registration/validationEvents")
    assert sent.status_code == 200
    correlation_id = sent.json()["correlationId"]
    queued = (
        await client.get(f"/webhooks/v1/registration/validationEvents/{correlation_id}")
    ).json()
    assert queued["status"] == "queued"
    assert queued["results"] == []

    await service.drain()
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    body = json.loads(request.content)
    assert body["EventName"] == "test-created"
    assert body["ResourceName"] == "test"
    assert body["ResourceUri"].endswith(
        f"/webhooks/v1/registration/validationEvents/{correlation_id}"
    )
    verify_callback(request, *await served_certificates(client, request))

    result = (
        await client.get(f"/webhooks/v1/registration/validationEvents/{correlation_id}")
    ).json()
    assert result["correlationId"] == correlation_id
    assert result["partnerId"] == identity.tenant_id
    assert result["status"] == "completed"
    assert result["callbackUrl"] == HOOK_URL
    [outcome] = result["results"]
    assert outcome["responseCode"] == "OK"
    assert outcome["responseMessage"] == "thanks"
    assert outcome["systemError"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}", outcome["dateTimeUtc"])

    clock.advance(7 * 86400 - 1)
    client.headers["Authorization"] = (
        f"Bearer {await app_token(client, identity, WEBHOOKS_AUDIENCE)}"
    )
    still = await client.get(f"/webhooks/v1/registration/validationEvents/{correlation_id}")
    assert still.status_code == 200
    clock.advance(1)
    purged = await client.get(f"/webhooks/v1/registration/validationEvents/{correlation_id}")
    assert purged.status_code == 404
    assert "kept for 7 days" in purged.json()["error"]["message"]


async def test_validation_results_report_failures(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver, clock: ManualClock
) -> None:
    await register(client, ["test-created"])
    receiver.script = [500, httpx.ConnectError("connection refused")]
    first = (await client.post("/webhooks/v1/registration/validationEvents")).json()[
        "correlationId"
    ]
    second = (await client.post("/webhooks/v1/registration/validationEvents")).json()[
        "correlationId"
    ]
    await service.drain()
    clock.advance(600)
    await service.drain()
    assert len(receiver.requests) == 2  # validation events are attempted once
    failed = (await client.get(f"/webhooks/v1/registration/validationEvents/{first}")).json()
    assert failed["results"][0]["responseCode"] == "Internal Server Error"
    assert failed["results"][0]["systemError"] is False
    broken = (await client.get(f"/webhooks/v1/registration/validationEvents/{second}")).json()
    assert broken["results"][0]["systemError"] is True
    assert "connection refused" in broken["results"][0]["responseMessage"]


async def test_validation_events_are_throttled_to_2_per_minute(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(client, ["test-created"])
    path = "/webhooks/v1/registration/validationEvents"
    assert (await client.post(path)).status_code == 200
    clock.advance(20)
    assert (await client.post(path)).status_code == 200
    throttled = await client.post(path)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "40"
    assert throttled.json()["error"]["code"] == "tooManyRequests"
    assert "2 per minute" in throttled.json()["error"]["message"]
    assert "ms-correlationid" in throttled.headers
    clock.advance(39)
    assert (await client.post(path)).headers["retry-after"] == "1"
    clock.advance(1)
    assert (await client.post(path)).status_code == 200  # the first one left the window
    again = await client.post(path)
    assert again.status_code == 429
    assert again.headers["retry-after"] == "20"


async def test_unknown_validation_event(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/webhooks/v1/registration/validationEvents/00000000-0000-4000-8000-000000000000"
    )
    assert response.status_code == 404
    assert response.json()["error"]["target"] == "correlationId"


# -- dispatch -----------------------------------------------------------------------------------


async def test_referral_event_is_signed_over_the_exact_body(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver, clock: ManualClock
) -> None:
    await register(client)
    service.emit("referral-created", REFERRAL_ID)
    assert receiver.requests == []  # nothing leaves before drain
    await service.drain()
    [request] = receiver.requests
    assert str(request.url) == HOOK_URL
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-ms-certificate-url"] == (
        f"{BASE}/cert/pcnotifications-dispatch.microsoft.com.cer"
    )
    assert "x-ms-signature" not in request.headers
    body = json.loads(request.content)
    assert list(body) == [
        "EventName",
        "ResourceUri",
        "ResourceName",
        "AuditUri",
        "ResourceChangeUtcDate",
    ]
    assert body == {
        "EventName": "referral-created",
        "ResourceUri": f"{BASE}/v1.0/engagements/referrals/{REFERRAL_ID}",
        "ResourceName": "referral",
        "AuditUri": None,
        "ResourceChangeUtcDate": format_change_date(clock.now()),
    }
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00", body["ResourceChangeUtcDate"]
    )
    leaf_der, ca_der = await served_certificates(client, request)
    leaf = verify_callback(request, leaf_der, ca_der)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "pcnotifications-dispatch.microsoft.com"
    )
    # The PEM CA is the same certificate.
    pem = await client.get("/cert/sandbox-root-ca.pem")
    assert x509.load_pem_x509_certificate(pem.content) == x509.load_der_x509_certificate(ca_der)
    # One changed byte breaks the signature.
    tampered = httpx.Request(
        "POST",
        HOOK_URL,
        headers=request.headers,
        content=request.content.replace(b"created", b"updated"),
    )
    with pytest.raises(InvalidSignature):
        verify_callback(tampered, leaf_der, ca_der)
    assert [a.outcome for a in service.deliveries] == ["delivered"]


async def test_signature_in_the_x_ms_signature_header(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver
) -> None:
    await register(client, SignatureTokenToMsSignatureHeader=True)
    service.emit("related-referral-updated", REFERRAL_ID)
    await service.drain()
    [request] = receiver.requests
    assert "authorization" not in request.headers
    verify_callback(request, *await served_certificates(client, request), header="x-ms-signature")


async def test_only_registered_events_are_sent(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver
) -> None:
    service.emit("referral-created", REFERRAL_ID)  # nothing registered yet
    await register(client, ["referral-updated"])
    service.emit("referral-created", REFERRAL_ID)
    service.emit("referral-updated", REFERRAL_ID)
    await service.drain()
    assert receiver.events() == ["referral-updated"]


async def test_events_are_sent_in_emit_order(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver
) -> None:
    await register(client)
    for event in REFERRAL_EVENTS:
        service.emit(event, REFERRAL_ID)
    await service.drain()
    assert receiver.events() == REFERRAL_EVENTS


def test_the_retry_schedule() -> None:
    delays = [retry_delay(n) for n in range(1, MAX_ATTEMPTS)]
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300, 300]


async def test_failed_deliveries_are_retried_with_backoff_on_the_clock(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver, clock: ManualClock
) -> None:
    await register(client)
    receiver.script = [500, httpx.ConnectTimeout("timed out"), 429]
    start = clock.now()
    service.emit("referral-updated", REFERRAL_ID)
    await service.drain()
    assert len(receiver.requests) == 1
    await service.drain()  # the retry is not due yet
    assert len(receiver.requests) == 1
    clock.advance(9.9)
    await service.drain()
    assert len(receiver.requests) == 1
    clock.advance(0.1)
    await service.drain()
    assert len(receiver.requests) == 2
    clock.advance(20)
    await service.drain()
    clock.advance(40)
    await service.drain()
    assert len(receiver.requests) == 4
    assert service.pending == 0
    log = service.deliveries
    assert [(a.attempt, a.outcome, a.status_code) for a in log] == [
        (1, "failed", 500),
        (2, "failed", None),
        (3, "failed", 429),
        (4, "delivered", 200),
    ]
    assert [(a.at - start).total_seconds() for a in log] == [0, 10, 30, 70]
    assert "ConnectTimeout" in (log[1].error or "")
    assert len({r.content for r in receiver.requests}) == 1  # the same signed bytes every time
    assert len({r.headers["authorization"] for r in receiver.requests}) == 1


async def test_dead_letter_after_10_attempts(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver, clock: ManualClock
) -> None:
    await register(client)
    receiver.default = 503
    service.emit("referral-created", REFERRAL_ID)
    await service.drain()
    for attempt in range(1, MAX_ATTEMPTS):
        clock.advance(retry_delay(attempt))
        await service.drain()
    assert len(receiver.requests) == MAX_ATTEMPTS
    assert service.pending == 0
    [dead] = service.dead_letters
    assert dead["event_name"] == "referral-created"
    assert dead["resource_id"] == REFERRAL_ID
    assert dead["attempts"] == MAX_ATTEMPTS
    clock.advance(86400)
    await service.drain()
    assert len(receiver.requests) == MAX_ATTEMPTS  # never retried again
    control = (await client.get("/control/webhooks/deliveries")).json()
    assert len(control["deliveries"]) == MAX_ATTEMPTS
    assert control["deliveries"][-1]["outcome"] == "failed"
    assert control["deliveries"][-1]["status_code"] == 503
    assert control["dead_letters"][0]["attempts"] == MAX_ATTEMPTS
    assert control["pending"] == []


# -- faults -------------------------------------------------------------------------------------


async def test_fault_settings_through_the_control_api(
    client: httpx.AsyncClient, service: WebhookService
) -> None:
    assert (await client.get("/control/webhooks/faults")).json() == {
        "drop": 0.0,
        "duplicate": 0.0,
        "delay_seconds": 0.0,
        "reorder": 0.0,
    }
    changed = await client.put("/control/webhooks/faults", json={"drop": 0.25, "delay_seconds": 3})
    assert changed.status_code == 200
    assert service.faults == WebhookFaults(drop=0.25, delay_seconds=3.0)
    for bad in ({"drop": 2}, {"reorder": -0.1}, {"delay_seconds": -1}, {"explode": 1}):
        refused = await client.put("/control/webhooks/faults", json=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"]["code"] == "invalidRequest"
    assert service.faults == WebhookFaults(drop=0.25, delay_seconds=3.0)


async def test_drop_fault(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver
) -> None:
    await register(client)
    service.faults = WebhookFaults(drop=1.0)
    service.emit("referral-created", REFERRAL_ID)
    await service.drain()
    assert receiver.requests == []
    [dropped] = service.deliveries
    assert (dropped.outcome, dropped.attempt) == ("dropped", 0)


async def test_duplicate_fault(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver
) -> None:
    await register(client)
    service.faults = WebhookFaults(duplicate=1.0)
    service.emit("referral-updated", REFERRAL_ID)
    await service.drain()
    assert len(receiver.requests) == 2
    assert receiver.requests[0].content == receiver.requests[1].content
    assert len({a.delivery_id for a in service.deliveries}) == 2


async def test_delay_fault(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver, clock: ManualClock
) -> None:
    await register(client)
    service.faults = WebhookFaults(delay_seconds=30)
    service.emit("referral-updated", REFERRAL_ID)
    await service.drain()
    assert receiver.requests == []
    clock.advance(29)
    await service.drain()
    assert receiver.requests == []
    clock.advance(1)
    await service.drain()
    assert len(receiver.requests) == 1


async def test_reorder_fault_sends_the_held_event_after_the_next(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver
) -> None:
    await register(client)
    service.faults = WebhookFaults(reorder=1.0)
    service.emit("referral-created", REFERRAL_ID)
    await service.drain()
    assert receiver.requests == []
    assert service.pending == 1
    service.faults = WebhookFaults()
    service.emit("referral-updated", REFERRAL_ID)
    await service.drain()
    assert receiver.events() == ["referral-updated", "referral-created"]


async def test_reordered_event_is_released_when_nothing_follows(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver, clock: ManualClock
) -> None:
    await register(client)
    service.faults = WebhookFaults(reorder=1.0)
    service.emit("referral-created", REFERRAL_ID)
    clock.advance(59)
    await service.drain()
    assert receiver.requests == []
    clock.advance(1)
    await service.drain()
    assert receiver.events() == ["referral-created"]


async def run_with_faults(
    seed: int, certificates: DispatchCertificates, key: rsa.RSAPrivateKey
) -> list[str]:
    clock = ManualClock()
    identity = Identity(clock, base_url=BASE, rng=random.Random(seed), signing_key=key)
    receiver = Receiver()
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as outbound:
        service = WebhookService(
            clock,
            base_url=BASE,
            identity=identity,
            rng=random.Random(seed),
            http_client=outbound,
            certificates=certificates,
            faults=WebhookFaults(drop=0.3, duplicate=0.3, reorder=0.3),
        )
        transport = httpx.ASGITransport(app=make_app(identity, service))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            http.headers["Authorization"] = (
                f"Bearer {await app_token(http, identity, WEBHOOKS_AUDIENCE)}"
            )
            await register(http)
        for n in range(30):
            service.emit("referral-updated", f"referral-{n}")
        clock.advance(120)
        await service.drain()
    return [json.loads(r.content)["ResourceUri"].rsplit("/", 1)[1] for r in receiver.requests]


async def test_faults_are_reproducible_from_the_seed(
    certificates: DispatchCertificates, signing_key: rsa.RSAPrivateKey
) -> None:
    first = await run_with_faults(11, certificates, signing_key)
    again = await run_with_faults(11, certificates, signing_key)
    other = await run_with_faults(12, certificates, signing_key)
    assert first == again
    assert first != other
    sent = [f"referral-{n}" for n in range(30)]
    assert first != sent  # some dropped, duplicated or reordered
    assert set(first) < set(sent)


# -- the run loop ---------------------------------------------------------------------------------


async def test_run_delivers_and_retries_in_the_background(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver
) -> None:
    await register(client)
    receiver.script = [500]
    task = asyncio.create_task(service.run())
    try:
        service.emit("referral-created", REFERRAL_ID)
        for _ in range(200):
            if len(receiver.requests) >= 2:
                break
            await asyncio.sleep(0)
        assert [a.outcome for a in service.deliveries] == ["failed", "delivered"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


class StoppedClock(ManualClock):
    """A clock whose sleeps never end: only a wake-up can make the run loop move."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


async def test_emit_from_another_thread_wakes_the_run_loop(
    identity: Identity, certificates: DispatchCertificates
) -> None:
    receiver = Receiver()
    clock = StoppedClock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as outbound:
        service = WebhookService(
            clock,
            base_url=BASE,
            identity=identity,
            rng=random.Random(3),
            http_client=outbound,
            certificates=certificates,
        )
        transport = httpx.ASGITransport(app=make_app(identity, service))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            http.headers["Authorization"] = (
                f"Bearer {await app_token(http, identity, WEBHOOKS_AUDIENCE)}"
            )
            await register(http)
        task = asyncio.create_task(service.run())
        try:
            await asyncio.sleep(0)
            thread = threading.Thread(target=service.emit, args=("referral-created", REFERRAL_ID))
            thread.start()
            thread.join()
            for _ in range(200):
                if receiver.requests:
                    break
                await asyncio.sleep(0.001)  # the wake-up crosses threads via the loop
            assert receiver.events() == ["referral-created"]
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert not outbound.is_closed  # a client handed in is the caller's to close


async def test_run_closes_the_client_it_made(
    clock: ManualClock, identity: Identity, certificates: DispatchCertificates
) -> None:
    service = WebhookService(
        clock, base_url=BASE, identity=identity, rng=random.Random(3), certificates=certificates
    )
    task = asyncio.create_task(service.run())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert service._http.is_closed


# -- certificates, info, persistence --------------------------------------------------------------


async def test_certificate_endpoints(client: httpx.AsyncClient, service: WebhookService) -> None:
    leaf = await client.get(
        "/cert/pcnotifications-dispatch.microsoft.com.cer", headers={"Authorization": ""}
    )
    assert leaf.status_code == 200
    assert leaf.headers["content-type"] == "application/pkix-cert"
    assert leaf.content == service.certificates.leaf_der()
    ca = await client.get("/cert/sandbox-root-ca.cer", headers={"Authorization": ""})
    assert ca.content == service.certificates.ca_der()
    ca_cert = x509.load_der_x509_certificate(ca.content)
    assert ca_cert.subject.rfc4514_string() == "O=cosell sandbox,CN=cosell sandbox root CA"
    assert service.info() == {
        "webhooks_api": f"{BASE}/webhooks/v1",
        "certificate_url": f"{BASE}/cert/pcnotifications-dispatch.microsoft.com.cer",
        "ca_certificate_url": f"{BASE}/cert/sandbox-root-ca.cer",
        "ca_certificate_pem_url": f"{BASE}/cert/sandbox-root-ca.pem",
    }


def test_generated_certificates_chain_for_client_and_server_verifiers() -> None:
    certs = DispatchCertificates.generate(ManualClock())
    store = Store([certs.ca_certificate])
    now = datetime.now(UTC)
    PolicyBuilder().store(store).time(now).build_client_verifier().verify(
        certs.leaf_certificate, []
    )
    other = DispatchCertificates.generate(ManualClock())
    with pytest.raises(x509.verification.VerificationError):
        PolicyBuilder().store(Store([other.ca_certificate])).time(
            now
        ).build_client_verifier().verify(certs.leaf_certificate, [])


async def test_snapshot_and_restore_keep_registration_queue_and_certificates(
    client: httpx.AsyncClient,
    service: WebhookService,
    receiver: Receiver,
    clock: ManualClock,
    identity: Identity,
) -> None:
    await register(client, ["referral-created", "test-created"])
    receiver.script = [500]
    service.emit("referral-created", REFERRAL_ID)
    await service.drain()
    correlation_id = (await client.post("/webhooks/v1/registration/validationEvents")).json()[
        "correlationId"
    ]
    service.faults = WebhookFaults(duplicate=0.5)
    saved = json.loads(json.dumps(service.snapshot()))

    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as outbound:
        restarted = WebhookService(
            clock, base_url=BASE, identity=identity, rng=random.Random(9), http_client=outbound
        )
        assert restarted.certificates.leaf_der() != service.certificates.leaf_der()
        restarted.restore(saved)
        assert restarted.certificates.leaf_der() == service.certificates.leaf_der()
        assert restarted.faults == WebhookFaults(duplicate=0.5)
        assert restarted.pending == 2
        assert [a.outcome for a in restarted.deliveries] == ["failed"]
        transport = httpx.ASGITransport(app=make_app(identity, restarted))
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE, headers=client.headers
        ) as http:
            shown = (await http.get("/webhooks/v1/registration")).json()
            assert shown["WebhookEvents"] == ["referral-created", "test-created"]
            clock.advance(10)
            await restarted.drain()
            result = (
                await http.get(f"/webhooks/v1/registration/validationEvents/{correlation_id}")
            ).json()
            assert result["status"] == "completed"
    created = [r.content for r in receiver.requests if b"referral-created" in r.content]
    assert len(created) == 2
    assert created[0] == created[1]  # the retry after the restart sent the same signed bytes
    assert [a.outcome for a in restarted.deliveries][-2:] == ["delivered", "delivered"]
    assert restarted.pending == 0


async def test_emit_never_raises(
    client: httpx.AsyncClient,
    service: WebhookService,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await register(client)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("serialiser unavailable")

    monkeypatch.setattr(service, "_new_delivery", broken)
    service.emit("referral-created", REFERRAL_ID)
    assert "webhook emit failed for referral-created" in caplog.text
    monkeypatch.undo()
    service.emit("referral-updated", REFERRAL_ID)
    await service.drain()
    assert receiver.events() == ["referral-updated"]


async def test_a_redirect_is_a_failed_attempt(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver
) -> None:
    await register(client)
    receiver.script = [302]
    service.emit("referral-created", REFERRAL_ID)
    await service.drain()
    [attempt] = service.deliveries
    assert (attempt.outcome, attempt.status_code) == ("failed", 302)
    assert service.pending == 1


async def test_idle_run_loop_leaves_the_clock_alone(
    client: httpx.AsyncClient, service: WebhookService, receiver: Receiver, clock: ManualClock
) -> None:
    await register(client)
    task = asyncio.create_task(service.run())
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        assert clock.sleeps == []
        service.faults = WebhookFaults(delay_seconds=5)
        service.emit("referral-created", REFERRAL_ID)
        for _ in range(50):
            if receiver.requests:
                break
            await asyncio.sleep(0)
        assert receiver.events() == ["referral-created"]
        assert sum(clock.sleeps) == pytest.approx(5)  # slept exactly until the delayed callback
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
