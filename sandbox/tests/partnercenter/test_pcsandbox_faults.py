"""Injected faults under a ManualClock: latency, 429/503 with Retry-After, the token bucket."""

from __future__ import annotations

import httpx
import pytest
from pcsandbox_helpers import BASE_URL, REFERRALS, user_token

from cosell.clock import ManualClock
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox, SandboxKeys, SandboxOptions
from cosell_sandbox.partnercenter.faults import ApiFaults, TokenBucket


async def test_latency_is_slept_on_the_sandbox_clock(
    api: httpx.AsyncClient, sandbox: PartnerCenterSandbox, clock: ManualClock
) -> None:
    sandbox.faults.latency_seconds = 0.25
    before = clock.now()
    assert (await api.get(REFERRALS)).status_code == 200
    assert clock.sleeps == [0.25]
    assert (clock.now() - before).total_seconds() == 0.25
    await api.get("/control/stats")  # the control API is never slowed down
    await api.post(f"/{sandbox.identity.tenant_id}/oauth2/token", data={})  # nor the token endpoint
    assert clock.sleeps == [0.25]


async def test_every_call_429_with_retry_after_and_the_throttling_body(
    api: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    sandbox.faults.error_429_fraction = 1.0
    sandbox.faults.retry_after_seconds = 7
    response = await api.get(REFERRALS, headers={"client-request-id": "abc"})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json() == {
        "statusCode": 429,
        "message": "Rate limit is exceeded. Try again in 7 seconds.",
    }
    assert response.headers["client-request-id"] == "abc"
    assert response.headers["request-id"]
    webhooks = await api.get("/webhooks/v1/registration/events")
    assert webhooks.status_code == 429
    assert (await api.get("/control/faults")).status_code == 200
    await api.get(f"{REFERRALS}/00000000-0000-4000-8000-000000000000")
    calls = {(c["route"], c["status"]) for c in (await api.get("/control/stats")).json()["calls"]}
    assert (REFERRALS, 429) in calls
    assert (REFERRALS + "/{referral_id}", 429) in calls


async def test_every_call_503_with_retry_after(
    api: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    sandbox.faults.error_503_fraction = 1.0
    sandbox.faults.retry_after_seconds = 2.5
    response = await api.post(REFERRALS, json={})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert response.json()["error"]["code"] == "serviceNotAvailable"
    assert len(sandbox.store) == 0


async def statuses(seed: int, keys: SandboxKeys, calls: int = 40) -> list[int]:
    options = SandboxOptions(
        seed=seed, faults=ApiFaults(error_429_fraction=0.3, error_503_fraction=0.2)
    )
    sandbox = PartnerCenterSandbox(
        base_url=BASE_URL, clock=ManualClock(), options=options, keys=keys
    )
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        client.headers["Authorization"] = f"Bearer {await user_token(client, sandbox)}"
        result = [(await client.get(REFERRALS)).status_code for _ in range(calls)]
    await sandbox.aclose()
    return result


async def test_fractions_are_reproducible_with_a_seed(pc_keys: SandboxKeys) -> None:
    first = await statuses(11, pc_keys)
    assert first == await statuses(11, pc_keys)
    assert set(first) == {200, 429, 503}
    assert first != await statuses(12, pc_keys)


async def test_token_bucket_throttles_with_the_computed_retry_after(
    api: httpx.AsyncClient, sandbox: PartnerCenterSandbox, clock: ManualClock
) -> None:
    await api.put("/control/faults", json={"throttle_rate_per_second": 0.25, "throttle_burst": 2})
    assert (await api.get(REFERRALS)).status_code == 200
    assert (await api.get(REFERRALS)).status_code == 200
    throttled = await api.get(REFERRALS)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "4"  # one token every 4 s
    assert throttled.json()["message"] == "Rate limit is exceeded. Try again in 4 seconds."
    clock.advance(3)
    again = await api.get(REFERRALS)
    assert again.headers["Retry-After"] == "1"
    clock.advance(1)
    assert (await api.get(REFERRALS)).status_code == 200
    await api.put("/control/faults", json={"throttle_rate_per_second": None})
    assert all([(await api.get(REFERRALS)).status_code == 200 for _ in range(5)])


def test_token_bucket_refills_up_to_its_capacity() -> None:
    clock = ManualClock()
    bucket = TokenBucket(clock, rate=2.0, capacity=3.0)
    assert [bucket.take() for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    clock.advance(100)
    assert [bucket.take() for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        (ApiFaults(latency_seconds=-1), "latency_seconds"),
        (ApiFaults(error_429_fraction=2), "error_429_fraction"),
        (ApiFaults(error_429_fraction=0.6, error_503_fraction=0.6), "at most 1"),
        (ApiFaults(throttle_rate_per_second=-3), "throttle_rate_per_second"),
        (ApiFaults(throttle_burst=-1), "throttle_burst"),
    ],
)
def test_invalid_faults_are_refused(faults: ApiFaults, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        faults.validate()
