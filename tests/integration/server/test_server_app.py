"""The service's app in process (httpx.ASGITransport): each endpoint and each refusal."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from server_kit import REFERRAL_ID, WEBHOOK, Service, Signer, event_body

from cosell.store import StoreUnavailableError, referral_key

KEY = referral_key(REFERRAL_ID)
TWO_MIB = 2 * 1024 * 1024


def _sample(metrics_text: str, name: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(name + " ") or (
            line.startswith(name + "{") and line.split(" ")[0] == name
        ):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def _metrics(service: Service) -> str:
    response = await service.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_a_signed_referral_event_is_committed_to_the_inbox_before_the_answer_200(
    service: Service, signer: Signer
) -> None:
    body = event_body()
    response = await service.client.post(WEBHOOK, content=body, headers=signer.headers(body))
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted", "key": KEY}
    # Durable before the answer: the drainer, woken once, finds the event committed; it stays
    # pending until the drainer has enqueued its reconcile (a crash now loses nothing).
    assert service.engine.pending_when_woken == [[KEY]]
    assert [(e.key, e.event_id, e.source) for e in service.store.pending_events()] == [
        (KEY, hashlib.sha256(body).hexdigest(), "partner-center")
    ]
    text = await _metrics(service)
    received = (
        'cosell_notifications_received_total{event="referral-updated",source="partner-center"}'
    )
    assert _sample(text, received) == 1.0


async def test_an_exact_redelivery_coalesces_in_the_inbox(service: Service, signer: Signer) -> None:
    body = event_body()
    for _ in range(2):
        response = await service.client.post(WEBHOOK, content=body, headers=signer.headers(body))
        assert response.status_code == 200
    assert service.inbox_rows() == 1
    other = event_body(event="referral-created")
    await service.client.post(WEBHOOK, content=other, headers=signer.headers(other))
    assert service.inbox_rows() == 2


async def test_a_forged_callback_is_refused_401_and_nothing_is_recorded_or_enqueued(
    service: Service, signer: Signer
) -> None:
    body = event_body()
    forged = signer.headers(body, signed=event_body(referral_id="someone-else"))
    response = await service.client.post(WEBHOOK, content=body, headers=forged)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    unsigned = {"Content-Type": "application/json"}
    assert (await service.client.post(WEBHOOK, content=body, headers=unsigned)).status_code == 401
    assert service.engine.woken == 0
    assert service.inbox_rows() == 0
    text = await _metrics(service)
    assert _sample(text, 'cosell_notifications_rejected_total{reason="invalid_signature"}') == 1.0
    assert _sample(text, 'cosell_notifications_rejected_total{reason="missing_header"}') == 1.0


async def test_a_body_over_the_cap_is_refused_413_by_its_length_or_while_streaming(
    service: Service, signer: Signer
) -> None:
    big = b"{" + b" " * TWO_MIB + b"}"
    response = await service.client.post(WEBHOOK, content=big, headers=signer.headers(b"{}"))
    assert response.status_code == 413
    read: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the cap is enforced while reading, and reading stops there.
        for _ in range(32):
            read.append(1)
            yield b" " * (64 * 1024)

    headers = signer.headers(b"{}")
    response = await service.client.post(WEBHOOK, content=chunks(), headers=headers)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert len(read) <= 18  # 1 MiB is 16 chunks of 64 KiB; the rest is never pulled
    assert service.inbox_rows() == 0
    assert service.engine.woken == 0


async def test_wrong_content_type_is_refused_415(service: Service, signer: Signer) -> None:
    body = event_body()
    headers = {**signer.headers(body), "Content-Type": "text/plain"}
    response = await service.client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 415
    assert service.inbox_rows() == 0


async def test_a_signed_body_that_is_not_an_event_is_refused_400(
    service: Service, signer: Signer
) -> None:
    for body in (b"not json", b"[1, 2]", b'{"ResourceName": "referral"}'):
        response = await service.client.post(WEBHOOK, content=body, headers=signer.headers(body))
        assert response.status_code == 400, body
        assert response.json()["error"] == "malformed_event"
    assert service.inbox_rows() == 0
    assert service.engine.woken == 0


async def test_validation_events_are_answered_200_and_not_enqueued(
    service: Service, signer: Signer
) -> None:
    for name in ("test-created", "validation"):
        body = event_body(event=name)
        response = await service.client.post(WEBHOOK, content=body, headers=signer.headers(body))
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
    assert service.engine.woken == 0
    assert service.inbox_rows() == 0


async def test_when_the_store_cannot_record_the_answer_is_503_and_nothing_is_recorded(
    service: Service, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(**_: object) -> list[bool]:
        raise StoreUnavailableError("cannot open the SQLite store: disk I/O error")

    monkeypatch.setattr(service.store, "record_events", unavailable)
    body = event_body()
    response = await service.client.post(WEBHOOK, content=body, headers=signer.headers(body))
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert service.engine.woken == 0
    monkeypatch.undo()
    assert service.inbox_rows() == 0
    response = await service.client.post(WEBHOOK, content=body, headers=signer.headers(body))
    assert response.status_code == 200  # Partner Center's retry is recorded
    assert [e.key for e in service.store.pending_events()] == [KEY]


async def test_healthz_answers_without_io(service: Service) -> None:
    response = await service.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert service.probes == {}


async def test_readyz_names_each_check_503_when_one_fails_and_caches_remote_checks(
    service: Service,
) -> None:
    response = await service.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "checks": {
            "database": {"ok": True, "detail": "database fine"},
            "salesforce_token": {"ok": True, "detail": "salesforce_token fine"},
        },
    }
    service.failing.add("salesforce_token")
    for _ in range(5):
        assert (await service.client.get("/readyz")).status_code == 200  # cached for a minute
    assert service.probes == {"database": 6, "salesforce_token": 1}
    service.clock.advance(60)
    response = await service.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["salesforce_token"] == {
        "ok": False,
        "detail": "RuntimeError: salesforce_token is down",
    }
    assert response.json()["ready"] is False


async def test_metrics_read_links_conflicts_and_inbox_from_the_store(
    service: Service, signer: Signer
) -> None:
    link = service.store.create_link(sobject="Opportunity", referral_id=REFERRAL_ID)
    service.store.update_link(link.id, sync_status="Error", last_error="boom")
    body = event_body()
    await service.client.post(WEBHOOK, content=body, headers=signer.headers(body))
    text = await _metrics(service)
    assert _sample(text, 'cosell_links{status="Error"}') == 1.0
    assert _sample(text, 'cosell_links{status="Synced"}') == 0.0
    assert _sample(text, "cosell_conflicts") == 0.0
    assert _sample(text, "cosell_inbox_pending") == 1.0
    assert _sample(text, 'cosell_api_calls_total{api="salesforce"}') == 0.0


async def test_the_lifespan_starts_the_engine_as_a_worker_and_stops_it_with_the_grace(
    service: Service,
) -> None:
    async with service.app.router.lifespan_context(service.app):
        assert service.engine.started == [True]
        assert service.engine.stopped == []
    assert service.engine.stopped == [10.0]


async def test_one_bad_callback_among_300_concurrent_ones_is_refused_alone(
    service: Service, signer: Signer
) -> None:
    # The attack run: a signed ResourceUri holding a lone surrogate failed the group commit
    # it shared with 273 valid callbacks, each answered 500.
    bodies = [event_body(referral_id=f"r-{n}") for n in range(299)]
    bodies.insert(150, event_body(referral_id="\ud800"))
    answers = await asyncio.gather(
        *(service.client.post(WEBHOOK, content=b, headers=signer.headers(b)) for b in bodies)
    )
    statuses = [a.status_code for a in answers]
    assert statuses[150] == 400
    assert answers[150].json()["error"] == "malformed_event"
    assert statuses[:150] + statuses[151:] == [200] * 299
    assert service.inbox_rows() == 299


@pytest.mark.parametrize(
    ("body", "certificate_url", "status", "reason"),
    [
        (event_body(), "http://[::1/cert/x", 401, "certificate_url_rejected"),
        (
            b'{"EventName":"referral-updated","x":' + b"[" * 1000 + b"]" * 1000 + b"}",
            None,
            400,
            "malformed_event",
        ),
        (
            event_body(ResourceUri="https://[::1/engagements/v1/referrals/r1"),
            None,
            400,
            "malformed_event",
        ),
        (event_body(referral_id="."), None, 400, "malformed_event"),
    ],
    ids=["unclosed IPv6 certificate URL", "nested 1,000 deep", "bad IPv6 ResourceUri", "id ."],
)
async def test_what_a_request_contains_never_gets_a_5xx(
    service: Service,
    signer: Signer,
    body: bytes,
    certificate_url: str | None,
    status: int,
    reason: str,
) -> None:
    headers = signer.headers(body)
    if certificate_url is not None:
        headers["X-MS-Certificate-Url"] = certificate_url
    response = await service.client.post(WEBHOOK, content=body, headers=headers)
    assert (response.status_code, response.json()["error"]) == (status, reason)
    assert response.json()["message"]
    assert service.inbox_rows() == 0


async def test_intake_answers_503_when_the_store_file_was_deleted(
    service: Service, signer: Signer
) -> None:
    database = service.store.url.database
    assert database is not None
    body = event_body()
    assert (
        await service.client.post(WEBHOOK, content=body, headers=signer.headers(body))
    ).status_code == 200
    for leftover in Path(database).parent.glob(Path(database).name + "*"):
        leftover.unlink()
    other = event_body(event="referral-created")
    response = await service.client.post(WEBHOOK, content=other, headers=signer.headers(other))
    assert (response.status_code, response.json()["error"]) == (503, "unavailable")
    assert service.engine.woken == 1  # nothing more was handed to the engine
