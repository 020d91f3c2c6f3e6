import json
import random
import uuid
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
from pc_fakes import StaticTokens, referral_payload
from structlog.testing import capture_logs

from cosell.clock import ManualClock
from cosell.partnercenter.client import ReferralsClient, RetryPolicy, odata_string
from cosell.partnercenter.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PartnerCenterTransportError,
    ServiceUnavailableError,
    ThrottledError,
    UnexpectedResponseError,
)
from cosell.partnercenter.models import (
    Consent,
    CustomerProfile,
    EngagementId,
    NewReferral,
    ReferralChanges,
    ReferralDetails,
    ReferralId,
    ReferralStatus,
    ReferralSubstatus,
    ReferralType,
)

BASE = "https://api.partner.microsoft.com/v1.0/engagements"
RID = ReferralId("2e6fd4a4-56fe-4a3f-9a6f-6e4c7f3e0a11")
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    def __init__(self, *responses: httpx.Response | Handler | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, Exception):
            raise item
        if isinstance(item, httpx.Response):
            return item
        return item(request)


def make_client(
    recorder: Recorder,
    *,
    clock: ManualClock | None = None,
    tokens: StaticTokens | None = None,
    retry: RetryPolicy | None = None,
    max_pages: int = 100,
) -> tuple[ReferralsClient, ManualClock, StaticTokens]:
    clock = clock or ManualClock()
    tokens = tokens or StaticTokens()
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    client = ReferralsClient(
        http,
        tokens,
        base_url=BASE,
        clock=clock,
        retry=retry or RetryPolicy(rng=random.Random(7)),
        max_pages=max_pages,
    )
    return client, clock, tokens


def ok(body: object, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": f"{code} happened"}}, headers=headers
    )


async def test_get_sends_the_documented_headers() -> None:
    recorder = Recorder(ok(referral_payload()))
    client, _, _ = make_client(recorder)
    referral = await client.get(RID)
    assert referral.e_tag == '"00006d10-0000-0000-0000-5c70aa630000"'
    request = recorder.requests[0]
    assert request.method == "GET"
    assert str(request.url) == f"{BASE}/referrals/{RID}"
    assert request.headers["authorization"] == "Bearer token-1"
    assert request.headers["accept"] == "application/json"
    uuid.UUID(request.headers["client-request-id"])
    uuid.UUID(request.headers["ms-requestid"])


async def test_etag_header_fills_a_missing_body_etag() -> None:
    body = referral_payload()
    del body["eTag"]
    client, _, _ = make_client(Recorder(ok(body, headers={"ETag": '"abc"'})))
    assert (await client.get(RID)).e_tag == '"abc"'


async def test_list_follows_next_links_over_three_pages_using_only_their_query() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("$skiptoken")
        index = {None: 0, "p2": 1, "p3": 2}[token]
        body: dict[str, object] = {
            "@odata.count": 5,
            "value": [referral_payload(id=f"r{index}-{i}") for i in range(2 if index < 2 else 1)],
        }
        if index < 2:
            # The documented nextLink points at another path (and http); only its query is used.
            body["@odata.nextLink"] = (
                f"http://api.partner.microsoft.com/v1.0/referrals?$skiptoken=p{index + 2}"
            )
        return ok(body)

    recorder = Recorder(page)
    client, _, _ = make_client(recorder)
    ids = [
        r.id
        async for r in client.list(
            filter="status eq 'Active'", orderby="updatedDateTime desc", top=2
        )
    ]
    assert ids == ["r0-0", "r0-1", "r1-0", "r1-1", "r2-0"]
    first, second, third = recorder.requests
    assert first.url.params["$filter"] == "status eq 'Active'"
    assert first.url.params["$orderby"] == "updatedDateTime desc"
    assert first.url.params["$top"] == "2"
    for request in (second, third):
        assert request.url.host == "api.partner.microsoft.com"
        assert request.url.scheme == "https"
        assert request.url.path == "/v1.0/engagements/referrals"
    assert second.url.params["$skiptoken"] == "p2"


async def test_list_page_reports_count_and_select() -> None:
    recorder = Recorder(ok({"@odata.count": 7, "value": [{"id": "a", "name": "x"}]}))
    client, _, _ = make_client(recorder)
    page = await client.list_page(select="id,name", count=True, skip=5)
    assert page.count == 7
    assert page.next_link is None
    assert page.referrals[0].id == "a"
    params = recorder.requests[0].url.params
    assert params["$select"] == "id,name"
    assert params["$count"] == "true"
    assert params["$skip"] == "5"


async def test_list_stops_on_a_repeated_next_link() -> None:
    body = {"value": [referral_payload()], "@odata.nextLink": f"{BASE}/referrals?$skiptoken=same"}
    client, _, _ = make_client(Recorder(ok(body)))
    with pytest.raises(UnexpectedResponseError, match="same nextLink twice"):
        _ = [r async for r in client.list()]


async def test_list_is_bounded_by_max_pages() -> None:
    counter = iter(range(1000))

    def endless(_: httpx.Request) -> httpx.Response:
        return ok({"value": [], "@odata.nextLink": f"{BASE}/referrals?$skiptoken={next(counter)}"})

    recorder = Recorder(endless)
    client, _, _ = make_client(recorder, max_pages=3)
    with pytest.raises(UnexpectedResponseError, match="stopped after 3 pages"):
        _ = [r async for r in client.list()]
    assert len(recorder.requests) == 3


async def test_list_refuses_a_body_without_value() -> None:
    client, _, _ = make_client(Recorder(ok({"items": []})))
    with pytest.raises(UnexpectedResponseError, match="value"):
        await client.list_page()


async def test_create_posts_the_new_referral() -> None:
    recorder = Recorder(ok(referral_payload(), status=201))
    client, _, _ = make_client(recorder)
    new = NewReferral(
        name="Fabrikam",
        type=ReferralType.INDEPENDENT,
        customer_profile=CustomerProfile.model_validate(
            {"name": "Fabrikam", "address": {"country": "DE"}}
        ),
        consent=Consent(consent_to_share_referral_with_microsoft_sellers=False),
        details=ReferralDetails.model_validate(
            {"dealValue": 5, "currency": "EUR", "closingDateTime": "2026-05-01T00:00:00Z"}
        ),
    )
    created = await client.create(new)
    assert created.id == "2e6fd4a4-56fe-4a3f-9a6f-6e4c7f3e0a11"
    request = recorder.requests[0]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content)["customerProfile"]["address"]["country"] == "DE"


async def test_update_sends_json_patch_with_the_etag_verbatim() -> None:
    recorder = Recorder(ok(referral_payload(name="renamed")))
    client, _, _ = make_client(recorder)
    etag = '"00006d10-0000-0000-0000-5c70aa630000"'
    updated = await client.update(
        RID, ReferralChanges(name="renamed", deal_value=Decimal(5)), etag=etag
    )
    assert updated is not None
    assert updated.name == "renamed"
    request = recorder.requests[0]
    assert request.method == "PATCH"
    assert request.headers["if-match"] == etag
    assert request.headers["prefer"] == "return=representation"
    assert json.loads(request.content) == [
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "replace", "path": "/details/dealValue", "value": 5},
    ]


async def test_update_without_representation_and_etag() -> None:
    recorder = Recorder(httpx.Response(204))
    client, _, _ = make_client(recorder)
    assert (
        await client.update(RID, ReferralChanges(notes="n"), etag=None, return_representation=False)
        is None
    )
    assert "if-match" not in recorder.requests[0].headers
    assert "prefer" not in recorder.requests[0].headers


async def test_update_refuses_an_empty_change_set() -> None:
    client, _, _ = make_client(Recorder(httpx.Response(204)))
    with pytest.raises(ValueError, match="empty"):
        await client.update(RID, ReferralChanges(), etag=None)


async def test_stale_etag_is_a_conflict_and_not_retried() -> None:
    recorder = Recorder(error(412, "preconditionFailed"))
    client, clock, _ = make_client(recorder)
    with pytest.raises(ConflictError):
        await client.update(RID, ReferralChanges(notes="n"), etag='"old"')
    assert len(recorder.requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [(400, "invalidRequest", InvalidRequestError), (404, "itemNotFound", NotFoundError)],
)
async def test_terminal_errors_are_not_retried(
    status: int, code: str, kind: type[Exception]
) -> None:
    recorder = Recorder(error(status, code))
    client, clock, _ = make_client(recorder)
    with pytest.raises(kind):
        await client.get(RID)
    assert len(recorder.requests) == 1
    assert clock.sleeps == []


async def test_retry_after_seconds_is_honoured_and_ids_behave() -> None:
    recorder = Recorder(
        error(429, "tooManyRequests", {"Retry-After": "7"}),
        error(503, "serviceNotAvailable", {"Retry-After": "2"}),
        ok(referral_payload()),
    )
    client, clock, _ = make_client(
        recorder, retry=RetryPolicy(rng=random.Random(1), retry_after_jitter=0.5)
    )
    with capture_logs() as logs:
        await client.update(RID, ReferralChanges(notes="n"), etag='"e"')
    assert [(e["event"], e["status"], e["retry_after"]) for e in logs] == [
        ("partnercenter.retry", 429, 7),
        ("partnercenter.retry", 503, 2),
    ]
    assert "token-1" not in repr(logs)
    assert len(recorder.requests) == 3
    assert 7 <= clock.sleeps[0] <= 7.5
    assert 2 <= clock.sleeps[1] <= 2.5
    assert len({r.headers["ms-requestid"] for r in recorder.requests}) == 1
    assert len({r.headers["client-request-id"] for r in recorder.requests}) == 3
    assert all(r.headers["if-match"] == '"e"' for r in recorder.requests)


async def test_two_logical_calls_get_two_ms_request_ids() -> None:
    recorder = Recorder(ok(referral_payload()))
    client, _, _ = make_client(recorder)
    await client.get(RID)
    await client.get(RID)
    assert (
        recorder.requests[0].headers["ms-requestid"] != recorder.requests[1].headers["ms-requestid"]
    )


async def test_retry_after_http_date_is_honoured() -> None:
    clock = ManualClock()
    when = "Mon, 05 Jan 2026 09:00:45 GMT"  # 45 s after ManualClock's start
    recorder = Recorder(
        error(503, "serviceNotAvailable", {"Retry-After": when}), ok(referral_payload())
    )
    client, _, _ = make_client(recorder, clock=clock, retry=RetryPolicy(retry_after_jitter=0))
    await client.get(RID)
    assert clock.sleeps == [45]


async def test_backoff_without_retry_after_is_capped_full_jitter_and_attempts_are_bounded() -> None:
    recorder = Recorder(error(500, "generalException"))
    policy = RetryPolicy(max_attempts=6, base_delay=1, max_delay=4, rng=random.Random(3))
    client, clock, _ = make_client(recorder, retry=policy)
    with pytest.raises(ServiceUnavailableError):
        await client.get(RID)
    assert len(recorder.requests) == 6
    assert len(clock.sleeps) == 5
    for attempt, slept in enumerate(clock.sleeps, start=1):
        assert 0 <= slept <= min(4, 2 ** (attempt - 1))


def test_backoff_schedule_is_reproducible_with_a_seed() -> None:
    a = RetryPolicy(rng=random.Random(42))
    b = RetryPolicy(rng=random.Random(42))
    assert [a.backoff(n, None) for n in range(1, 8)] == [b.backoff(n, None) for n in range(1, 8)]
    samples = [RetryPolicy(rng=random.Random(s)).backoff(10, None) for s in range(200)]
    assert max(samples) <= 30
    assert min(samples) >= 0
    assert len(set(samples)) > 100


async def test_a_retry_after_beyond_the_limit_goes_to_the_caller() -> None:
    recorder = Recorder(error(429, "tooManyRequests", {"Retry-After": "3600"}))
    client, clock, _ = make_client(recorder)
    with pytest.raises(ThrottledError) as caught:
        await client.get(RID)
    assert caught.value.retry_after == 3600
    assert clock.sleeps == []
    assert len(recorder.requests) == 1


async def test_transport_errors_are_retried_then_raised() -> None:
    recorder = Recorder(httpx.ConnectError("refused"))
    client, clock, _ = make_client(
        recorder, retry=RetryPolicy(max_attempts=3, rng=random.Random(0))
    )
    with pytest.raises(PartnerCenterTransportError, match="got no answer"):
        await client.get(RID)
    assert len(recorder.requests) == 3
    assert len(clock.sleeps) == 2


async def test_transport_error_then_success() -> None:
    recorder = Recorder(httpx.ReadTimeout("slow"), ok(referral_payload()))
    client, _, _ = make_client(recorder)
    assert (await client.get(RID)).id == RID


async def test_401_invalidates_the_token_and_retries_once() -> None:
    recorder = Recorder(error(401, "unauthenticated"), ok(referral_payload()))
    client, clock, tokens = make_client(recorder)
    await client.get(RID)
    assert tokens.invalidations == 1
    assert [r.headers["authorization"] for r in recorder.requests] == [
        "Bearer token-1",
        "Bearer token-2",
    ]
    assert clock.sleeps == []


async def test_a_second_401_is_terminal() -> None:
    recorder = Recorder(error(401, "unauthenticated"))
    client, _, tokens = make_client(recorder)
    with pytest.raises(AuthenticationError, match="token was refused"):
        await client.get(RID)
    assert len(recorder.requests) == 2
    assert tokens.invalidations == 1


async def test_non_json_success_is_unexpected() -> None:
    client, _, _ = make_client(Recorder(httpx.Response(200, text="<html>")))
    with pytest.raises(UnexpectedResponseError, match="not JSON"):
        await client.get(RID)


@pytest.mark.parametrize("bad", ["../webhooks", ".", "..", "/", "%2F", "", "a b", "\ud800"])
async def test_an_id_that_is_not_a_referral_id_is_refused_before_any_request(bad: str) -> None:
    # `.` once made the client fetch the list endpoint (`referrals/.`) as a referral.
    recorder = Recorder(ok(referral_payload()))
    client, _, _ = make_client(recorder)
    with pytest.raises(ValueError, match="not a referral id"):
        client.referral_url(bad)
    with pytest.raises(ValueError, match="not a referral id"):
        await client.get(ReferralId(bad))
    assert recorder.requests == []


async def test_status_change_is_sent_as_a_pair() -> None:
    recorder = Recorder(ok(referral_payload(status="Closed", substatus="Won")))
    client, _, _ = make_client(recorder)
    changes = ReferralChanges(status=ReferralStatus.CLOSED, substatus=ReferralSubstatus.WON)
    updated = await client.update(RID, changes, etag='"e"')
    assert updated is not None
    assert updated.is_terminal
    assert [op["path"] for op in json.loads(recorder.requests[0].content)] == [
        "/status",
        "/substatus",
    ]


def test_odata_string_doubles_quotes() -> None:
    assert odata_string("O'Brien") == "'O''Brien'"
    assert odata_string("") == "''"


async def test_lookups_build_safe_filters() -> None:
    recorder = Recorder(ok({"value": [referral_payload()]}))
    client, _, _ = make_client(recorder)
    found = await client.find_by_external_reference("006' or 1 eq 1 or id eq '")
    assert len(found) == 1
    assert recorder.requests[0].url.params["$filter"] == (
        "externalReferenceId eq '006'' or 1 eq 1 or id eq '''"
    )
    await client.engagement(EngagementId("9d3a0c2b-3ad8-4b54-9e4c-2f5e5a7f1b22"))
    assert recorder.requests[1].url.params["$filter"] == (
        "engagementId eq '9d3a0c2b-3ad8-4b54-9e4c-2f5e5a7f1b22'"
    )
    with pytest.raises(ValueError, match="GUID"):
        await client.engagement(EngagementId("x' or 1 eq 1"))
