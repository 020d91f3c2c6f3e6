"""429/503 with Retry-After, throttling and latency from the sandbox, on the shared ManualClock."""

from __future__ import annotations

import random

import httpx
import pytest
from pc_contract_kit import BASE, PartnerCenter, new_referral

from cosell.partnercenter.client import ReferralsClient, RetryPolicy
from cosell.partnercenter.errors import ServiceUnavailableError, ThrottledError
from cosell.partnercenter.models import ReferralChanges, ReferralId


class Recording(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox and keeps each request and response."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.exchanges.append((request, response))
        return response


def recording_client(pc: PartnerCenter, retry: RetryPolicy) -> tuple[ReferralsClient, Recording]:
    recording = Recording(httpx.ASGITransport(app=pc.sandbox.app))
    http = httpx.AsyncClient(transport=recording, base_url=BASE)
    client = ReferralsClient(
        http,
        pc.user_tokens,
        base_url=pc.info["referrals_api"].removesuffix("/referrals"),
        clock=pc.clock,
        retry=retry,
    )
    return client, recording


async def set_faults(pc: PartnerCenter, **faults: object) -> None:
    await pc.control("PUT", "/faults", faults)


async def test_429_is_retried_after_retry_after_then_given_up(pc: PartnerCenter) -> None:
    await pc.user_tokens.token()
    await set_faults(pc, error_429_fraction=1.0, retry_after_seconds=7)
    with pytest.raises(ThrottledError) as caught:
        await pc.referrals.list_page()
    assert caught.value.retry_after == 7
    assert len(pc.clock.sleeps) == 4  # five attempts, four waits
    assert all(7 <= s <= 8 for s in pc.clock.sleeps)


async def test_503_with_retry_after_then_success_keeps_one_ms_request_id(pc: PartnerCenter) -> None:
    current = await pc.referrals.create(new_referral())
    assert current.id is not None
    client, recording = recording_client(pc, RetryPolicy(max_attempts=20, rng=random.Random(2)))
    await set_faults(pc, error_503_fraction=0.5, retry_after_seconds=3)
    pc.clock.sleeps.clear()
    for i in range(8):
        updated = await client.update(
            current.id, ReferralChanges(notes=f"update {i}"), etag=current.e_tag
        )
        assert updated is not None
        assert updated.details is not None
        assert updated.details.notes == f"update {i}"
        current = updated
    calls: dict[str, list[tuple[httpx.Request, httpx.Response]]] = {}
    for request, response in recording.exchanges:
        calls.setdefault(request.headers["ms-requestid"], []).append((request, response))
    assert len(calls) == 8  # one MS-RequestId per logical write, kept across its retries
    for exchanges in calls.values():
        statuses = [r.status_code for _, r in exchanges]
        assert statuses[-1] == 200
        assert set(statuses[:-1]) <= {503}
        assert len({q.headers["client-request-id"] for q, _ in exchanges}) == len(exchanges)
    retried = sum(len(e) - 1 for e in calls.values())
    assert retried > 0
    assert len(pc.clock.sleeps) == retried
    assert all(3 <= s <= 4 for s in pc.clock.sleeps)
    for request, response in recording.exchanges:
        assert response.headers["client-request-id"] == request.headers["client-request-id"]
        assert response.headers.get("request-id")


async def test_503_always_gives_up_with_a_retriable_error(pc: PartnerCenter) -> None:
    await pc.user_tokens.token()
    await set_faults(pc, error_503_fraction=1.0, retry_after_seconds=2)
    with pytest.raises(ServiceUnavailableError) as caught:
        await pc.referrals.get(ReferralId("x"))
    assert caught.value.retry_after == 2


async def test_token_bucket_throttle_is_waited_out_on_the_clock(pc: PartnerCenter) -> None:
    await pc.user_tokens.token()
    await set_faults(pc, throttle_rate_per_second=0.5, throttle_burst=1)
    for _ in range(4):
        await pc.referrals.list_page()
    assert pc.clock.sleeps  # throttled at least once ...
    assert all(s >= 1 for s in pc.clock.sleeps)  # ... and waited the Retry-After each time


async def test_injected_latency_passes_on_the_clock(pc: PartnerCenter) -> None:
    await pc.user_tokens.token()
    await set_faults(pc, latency_seconds=0.25)
    before = pc.clock.monotonic()
    await pc.referrals.list_page()
    assert pc.clock.monotonic() - before == pytest.approx(0.25)
