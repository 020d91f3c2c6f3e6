"""`ReferralsClient.patch`: raw JSON Patch operations with If-Match, same retries and errors."""

import json
import random

import httpx
import pytest
from pc_fakes import StaticTokens, referral_payload

from cosell.clock import ManualClock
from cosell.partnercenter.client import ReferralsClient, RetryPolicy
from cosell.partnercenter.errors import ConflictError, InvalidRequestError
from cosell.partnercenter.models import ReferralId

BASE = "https://api.partner.microsoft.com/v1.0/engagements"
RID = ReferralId("2e6fd4a4-56fe-4a3f-9a6f-6e4c7f3e0a11")
ETAG = '"00006d10-0000-0000-0000-5c70aa630000"'


class Recorder:
    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]


def make_client(recorder: Recorder) -> tuple[ReferralsClient, ManualClock]:
    clock = ManualClock()
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    client = ReferralsClient(
        http, StaticTokens(), base_url=BASE, clock=clock, retry=RetryPolicy(rng=random.Random(1))
    )
    return client, clock


def error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": f"{code} happened"}})


OPS = [
    {"op": "replace", "path": "/details/dealValue", "value": 5},
    {"op": "add", "path": "/inviteContext", "value": {"assistanceRequestCode": "GeneralOrOther"}},
]


async def test_patch_sends_the_operations_verbatim_with_if_match() -> None:
    recorder = Recorder(httpx.Response(200, json=referral_payload(name="renamed")))
    client, _ = make_client(recorder)
    updated = await client.patch(RID, OPS, etag=ETAG)
    assert updated is not None
    assert updated.name == "renamed"
    request = recorder.requests[0]
    assert request.method == "PATCH"
    assert str(request.url) == f"{BASE}/referrals/{RID}"
    assert request.headers["if-match"] == ETAG
    assert request.headers["prefer"] == "return=representation"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == OPS


async def test_patch_without_representation_returns_none() -> None:
    recorder = Recorder(httpx.Response(204))
    client, _ = make_client(recorder)
    assert await client.patch(RID, OPS, etag=None, return_representation=False) is None
    assert "if-match" not in recorder.requests[0].headers
    assert "prefer" not in recorder.requests[0].headers


@pytest.mark.parametrize(
    "operations",
    [[], [{"op": "remove", "path": "/name"}], [{"op": "replace", "value": 1}]],
)
async def test_patch_refuses_what_partner_center_would_refuse(operations: list[dict]) -> None:
    recorder = Recorder(httpx.Response(204))
    client, _ = make_client(recorder)
    with pytest.raises(ValueError, match="operations"):
        await client.patch(RID, operations, etag=ETAG)
    assert recorder.requests == []


async def test_patch_stale_etag_is_a_conflict_not_retried() -> None:
    recorder = Recorder(error(412, "preconditionFailed"))
    client, clock = make_client(recorder)
    with pytest.raises(ConflictError):
        await client.patch(RID, OPS, etag='"old"')
    assert len(recorder.requests) == 1
    assert clock.sleeps == []


async def test_patch_refused_change_is_terminal() -> None:
    recorder = Recorder(error(400, "invalidRequest"))
    client, _ = make_client(recorder)
    with pytest.raises(InvalidRequestError):
        await client.patch(RID, OPS, etag=ETAG)


async def test_patch_retries_a_503_with_the_same_request_id() -> None:
    recorder = Recorder(
        httpx.Response(503, headers={"Retry-After": "2"}),
        httpx.Response(200, json=referral_payload()),
    )
    client, clock = make_client(recorder)
    assert await client.patch(RID, OPS, etag=ETAG) is not None
    assert len(recorder.requests) == 2
    assert clock.sleeps
    assert clock.sleeps[0] >= 2
    first, second = recorder.requests
    assert first.headers["ms-requestid"] == second.headers["ms-requestid"]
    assert json.loads(second.content) == OPS
    assert second.headers["if-match"] == ETAG
