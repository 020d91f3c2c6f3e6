"""The control API: Microsoft's side of co-sell, incoming referrals, time, faults, stats, reset."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pcsandbox_helpers import BASE_URL, REFERRALS, co_sell_body, user_token

from cosell.clock import ManualClock, SystemClock
from cosell_sandbox.partnercenter import app as app_module
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox, SandboxKeys

Create = Callable[..., Any]
DAY = 86400


@pytest.fixture
def seen(sandbox: PartnerCenterSandbox, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(sandbox.webhooks, "emit", lambda name, rid: events.append((name, rid)))
    return events


async def test_info_is_the_startup_json(
    client: httpx.AsyncClient, sandbox: PartnerCenterSandbox
) -> None:
    info = (await client.get("/control/info")).json()
    assert info == sandbox.info()
    assert info["sandbox"] == "partner-center"
    assert info["referrals_api"] == "http://pc.sandbox.test/v1.0/engagements/referrals"
    assert info["control_api"] == "http://pc.sandbox.test/control"
    for key in (
        "base_url",
        "webhooks_api",
        "token_endpoint",
        "authority",
        "certificate_url",
        "ca_certificate_url",
        "tenant_id",
        "client_id",
        "client_secret",
        "refresh_token",
        "username",
        "password",
    ):
        assert info[key], key


async def test_incoming_lead(
    api: httpx.AsyncClient, sandbox: PartnerCenterSandbox, seen: list[tuple[str, str]]
) -> None:
    response = await api.post("/control/referrals/incoming", json={"kind": "lead"})
    assert response.status_code == 201, response.text
    lead = response.json()
    assert (lead["status"], lead["substatus"], lead["direction"]) == ("New", "Pending", "Incoming")
    assert (lead["type"], lead["qualification"]) == ("Independent", "MarketingQualified")
    assert lead["organizationId"] == sandbox.identity.tenant_id
    assert lead["inviteContext"]["invitedBy"]["organizationId"] == "msft"
    assert lead["createdDateTime"] == "2026-01-05T09:00:00.0000000Z"
    assert lead["expirationDateTime"] == "2026-01-19T09:00:00.0000000Z"
    assert seen == [("referral-created", lead["id"])]
    listed = await api.get(REFERRALS, params={"$filter": "direction eq 'Incoming'"})
    assert [r["id"] for r in listed.json()["value"]] == [lead["id"]]


async def test_incoming_lead_can_be_direct_and_fields_can_be_overridden(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "kind": "lead",
        "qualification": "Direct",
        "name": "Walk-in lead",
        "customerProfile": {"address": {"country": "FR"}},
        "details": {"dealValue": 1200, "currency": "EUR"},
    }
    lead = (await client.post("/control/referrals/incoming", json=body)).json()
    assert lead["qualification"] == "Direct"
    assert lead["name"] == "Walk-in lead"
    assert lead["customerProfile"]["address"]["country"] == "FR"
    assert lead["customerProfile"]["address"]["city"] == "Redmond"  # merged, not replaced
    assert lead["details"]["currency"] == "EUR"


async def test_incoming_co_sell_opportunity(
    client: httpx.AsyncClient, sandbox: PartnerCenterSandbox, seen: list[tuple[str, str]]
) -> None:
    opportunity = (
        await client.post("/control/referrals/incoming", json={"kind": "co-sell"})
    ).json()
    assert (opportunity["type"], opportunity["qualification"]) == ("Shared", "SalesQualified")
    assert opportunity["direction"] == "Incoming"
    assert opportunity["team"][0]["email"].endswith("@microsoft.com")
    assert opportunity["inviteContext"]["invitedBy"] == {
        "organizationId": "msft",
        "organizationName": "Microsoft",
    }
    microsoft = (await client.get(f"/control/referrals/{opportunity['id']}/microsoft")).json()
    assert microsoft["engagementId"] == opportunity["engagementId"]
    assert (microsoft["organizationId"], microsoft["direction"]) == ("msft", "Outgoing")
    assert (microsoft["status"], microsoft["substatus"]) == ("Active", "Accepted")
    assert seen == [
        ("referral-created", opportunity["id"]),
        ("related-referral-created", microsoft["id"]),
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"kind": "partnership"}, 400),
        ({}, 400),
        ({"kind": "lead", "qualification": "SalesQualified"}, 400),
        ({"kind": "lead", "customerProfile": {"address": {"country": "Germany"}}}, 400),
    ],
)
async def test_bad_incoming_requests(
    client: httpx.AsyncClient, body: dict[str, Any], status: int
) -> None:
    response = await client.post("/control/referrals/incoming", json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == "invalidRequest"


async def test_microsoft_accepts_adds_a_note_and_sets_the_msx_id(
    api: httpx.AsyncClient,
    create: Create,
    clock: ManualClock,
    seen: list[tuple[str, str]],
) -> None:
    mine = await create(co_sell_body())
    microsoft_id = (await api.get(f"/control/referrals/{mine['id']}/microsoft")).json()["id"]
    seen.clear()
    clock.advance(60)

    accepted = await api.post(f"/control/referrals/{mine['id']}/microsoft/accept")
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["substatus"]) == ("Active", "Accepted")
    assert accepted.json()["acceptedDateTime"] == "2026-01-05T09:01:00.0000000Z"

    noted = await api.post(
        f"/control/referrals/{microsoft_id}/microsoft/notes",
        json={"text": "Customer call on Friday"},
    )
    assert noted.status_code == 200
    noted2 = await api.post(
        f"/control/referrals/{mine['id']}/microsoft/notes", json={"text": "Budget approved"}
    )
    assert noted2.json()["details"]["notes"] == (
        "[2026-01-05T09:01:00.0000000Z] Customer call on Friday\n"
        "[2026-01-05T09:01:00.0000000Z] Budget approved"
    )

    msx = await api.put(
        f"/control/referrals/{mine['id']}/microsoft/msx-id", json={"msxId": "7-ABCDEFG23"}
    )
    assert msx.status_code == 200
    assert msx.json()["trackingInfo"]["microsoftMsxId"] == "7-ABCDEFG23"

    # The partner sees every change of Microsoft's side by listing its engagement.
    listed = await api.get(REFERRALS, params={"$filter": f"engagementId eq {mine['engagementId']}"})
    microsoft = next(r for r in listed.json()["value"] if r["organizationId"] == "msft")
    assert microsoft["trackingInfo"]["microsoftMsxId"] == "7-ABCDEFG23"
    assert microsoft["status"] == "Active"
    assert seen == [("related-referral-updated", microsoft_id)] * 4


async def test_microsoft_declines_with_a_reason(api: httpx.AsyncClient, create: Create) -> None:
    mine = await create(co_sell_body())
    missing = await api.post(f"/control/referrals/{mine['id']}/microsoft/decline", json={})
    assert missing.status_code == 400
    declined = await api.post(
        f"/control/referrals/{mine['id']}/microsoft/decline", json={"statusReason": "Not a fit"}
    )
    assert declined.status_code == 200
    assert (declined.json()["substatus"], declined.json()["statusReason"]) == (
        "Declined",
        "Not a fit",
    )
    again = await api.post(f"/control/referrals/{mine['id']}/microsoft/accept")
    assert again.status_code == 400
    assert "Closed referrals are final" in again.json()["error"]["message"]
    # The partner's own referral is untouched.
    assert (await api.get(f"{REFERRALS}/{mine['id']}")).json()["status"] == "Active"


async def test_microsoft_closes_won_only_after_accepting(
    api: httpx.AsyncClient, create: Create
) -> None:
    mine = await create(co_sell_body())
    url = f"/control/referrals/{mine['id']}/microsoft"
    early = await api.post(f"{url}/close", json={"substatus": "Won"})
    assert early.status_code == 400
    assert "accept it first" in early.json()["error"]["message"]
    assert (await api.post(f"{url}/accept")).status_code == 200
    bad = await api.post(f"{url}/close", json={"substatus": "Expired"})
    assert bad.status_code == 400
    won = await api.post(
        f"{url}/close", json={"substatus": "Lost", "statusReason": "Chose another vendor"}
    )
    assert won.status_code == 200
    assert (won.json()["status"], won.json()["substatus"]) == ("Closed", "Lost")


async def test_microsoft_updates_fields_by_json_patch(
    api: httpx.AsyncClient, create: Create
) -> None:
    mine = await create(co_sell_body())
    url = f"/control/referrals/{mine['id']}/microsoft"
    ops = [
        {"op": "replace", "path": "/details/dealValue", "value": 99000},
        {"op": "add", "path": "/team/-", "value": {"email": "seller@microsoft.com"}},
    ]
    updated = await api.patch(url, json=ops)
    assert updated.status_code == 200, updated.text
    assert updated.json()["details"]["dealValue"] == 99000
    assert updated.json()["team"] == [{"email": "seller@microsoft.com"}]
    refused = await api.patch(url, json=[{"op": "replace", "path": "/engagementId", "value": "x"}])
    assert refused.status_code == 400
    assert refused.json()["error"]["target"] == "/engagementId"


async def test_microsoft_side_of_a_private_referral_is_404(
    api: httpx.AsyncClient, create: Create
) -> None:
    mine = await create()
    response = await api.post(f"/control/referrals/{mine['id']}/microsoft/accept")
    assert response.status_code == 404
    assert "has no Microsoft referral" in response.json()["error"]["message"]
    unknown = await api.get("/control/referrals/nope/microsoft")
    assert unknown.status_code == 404


async def fresh_token(api: httpx.AsyncClient, sandbox: PartnerCenterSandbox) -> None:
    """After a jump of days the old access token has expired: get a new one."""
    api.headers["Authorization"] = f"Bearer {await user_token(api, sandbox)}"


async def test_incoming_referrals_expire_after_14_days(
    api: httpx.AsyncClient,
    create: Create,
    seen: list[tuple[str, str]],
    sandbox: PartnerCenterSandbox,
) -> None:
    lead = (await api.post("/control/referrals/incoming", json={"kind": "lead"})).json()
    mine = await create(co_sell_body())
    microsoft_id = (await api.get(f"/control/referrals/{mine['id']}/microsoft")).json()["id"]
    seen.clear()

    almost = await api.post("/control/clock/advance", json={"seconds": 14 * DAY - 1})
    await fresh_token(api, sandbox)
    assert almost.json() == {
        "now": "2026-01-19T08:59:59.0000000Z",
        "advanced_seconds": 14 * DAY - 1,
    }
    assert (await api.get(f"{REFERRALS}/{lead['id']}")).json()["status"] == "New"
    assert seen == []

    await api.post("/control/clock/advance", json={"seconds": 1})
    expired = (await api.get(f"{REFERRALS}/{lead['id']}")).json()
    assert (expired["status"], expired["substatus"]) == ("Closed", "Expired")
    assert expired["closedDateTime"] == lead["expirationDateTime"]
    microsoft = (await api.get(f"{REFERRALS}/{microsoft_id}")).json()
    assert microsoft["substatus"] == "Expired"
    assert sorted(seen) == [
        ("referral-updated", lead["id"]),
        ("related-referral-updated", microsoft_id),
    ]
    # Expired is terminal, and the partner's own outgoing referral never expires.
    accept = [
        {"op": "replace", "path": "/status", "value": "Active"},
        {"op": "replace", "path": "/substatus", "value": "Accepted"},
    ]
    assert (await api.patch(f"{REFERRALS}/{lead['id']}", json=accept)).status_code == 400
    assert (await api.get(f"{REFERRALS}/{mine['id']}")).json()["status"] == "Active"


async def test_an_accepted_incoming_referral_does_not_expire(
    api: httpx.AsyncClient, sandbox: PartnerCenterSandbox, clock: ManualClock
) -> None:
    lead = sandbox.store.create_incoming("lead")
    accept = [
        {"op": "replace", "path": "/status", "value": "Active"},
        {"op": "replace", "path": "/substatus", "value": "Accepted"},
    ]
    assert (await api.patch(f"{REFERRALS}/{lead['id']}", json=accept)).status_code == 204
    clock.advance(30 * DAY)
    await fresh_token(api, sandbox)
    assert (await api.get(f"{REFERRALS}/{lead['id']}")).json()["status"] == "Active"


async def test_clock(client: httpx.AsyncClient) -> None:
    assert (await client.get("/control/clock")).json() == {
        "now": "2026-01-05T09:00:00.0000000Z",
        "advanced_seconds": 0.0,
    }
    bad = await client.post("/control/clock/advance", json={"seconds": -5})
    assert bad.status_code == 400


async def test_a_clock_that_cannot_advance_is_a_clear_error(pc_keys: SandboxKeys) -> None:
    sandbox = PartnerCenterSandbox(base_url=BASE_URL, clock=SystemClock(), keys=pc_keys)
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        response = await client.post("/control/clock/advance", json={"seconds": 5})
    await sandbox.aclose()
    assert response.status_code == 400
    assert "SystemClock) cannot be advanced" in response.json()["error"]["message"]


async def test_faults_get_and_set(client: httpx.AsyncClient, sandbox: PartnerCenterSandbox) -> None:
    assert (await client.get("/control/faults")).json() == {
        "latency_seconds": 0.0,
        "error_429_fraction": 0.0,
        "error_503_fraction": 0.0,
        "retry_after_seconds": 1.0,
        "throttle_rate_per_second": None,
        "throttle_burst": 0,
    }
    changed = await client.put(
        "/control/faults", json={"latency_seconds": 0.1, "error_503_fraction": 0.2}
    )
    assert changed.status_code == 200
    assert changed.json()["latency_seconds"] == 0.1
    assert changed.json()["error_503_fraction"] == 0.2
    assert sandbox.faults.latency_seconds == 0.1
    for body in ({"error_429_fraction": 1.5}, {"nonsense": 1}, {"throttle_rate_per_second": 0}):
        refused = await client.put("/control/faults", json=body)
        assert refused.status_code == 400, body
        assert refused.json()["error"]["code"] == "invalidRequest"
    assert sandbox.faults.error_429_fraction == 0.0


async def test_stats_count_api_calls_by_route_method_and_status(
    api: httpx.AsyncClient, create: Create
) -> None:
    created = await create()
    await api.get(f"{REFERRALS}/{created['id']}")
    await api.get(f"{REFERRALS}/{created['id']}")
    await api.get(f"{REFERRALS}/00000000-0000-4000-8000-000000000000")
    stats = (await api.get("/control/stats")).json()
    calls = {(c["route"], c["method"], c["status"]): c["count"] for c in stats["calls"]}
    assert calls[(REFERRALS, "POST", 201)] == 1
    assert calls[(REFERRALS + "/{referral_id}", "GET", 200)] == 2
    assert calls[(REFERRALS + "/{referral_id}", "GET", 404)] == 1
    assert not any(route.startswith("/control") for route, _, _ in calls)
    assert stats["total"] == sum(calls.values())
    assert (await api.delete("/control/stats")).status_code == 204
    assert (await api.get("/control/stats")).json() == {"total": 0, "calls": []}


async def test_reset_forgets_referrals_and_keeps_credentials(
    api: httpx.AsyncClient, create: Create, sandbox: PartnerCenterSandbox
) -> None:
    await create()
    await api.put("/control/faults", json={"latency_seconds": 1})
    response = await api.post("/control/reset")
    assert response.status_code == 200
    assert sandbox.faults.latency_seconds == 0
    listed = await api.get(REFERRALS, params={"$count": "true"})
    assert listed.status_code == 200  # the same token still works
    assert listed.json()["@odata.count"] == 0


async def test_served_sandbox_expires_referrals_without_api_calls(
    sandbox: PartnerCenterSandbox,
    clock: ManualClock,
    seen: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_module, "EXPIRY_SWEEP_SECONDS", 0.0)  # sweep on every loop turn
    lead = sandbox.store.create_incoming("lead")
    async with sandbox.app.router.lifespan_context(sandbox.app):
        clock.advance(14 * DAY)
        for _ in range(10):
            await asyncio.sleep(0)
        assert ("referral-updated", lead["id"]) in seen
    assert sandbox.store.get(lead["id"])["substatus"] == "Expired"
