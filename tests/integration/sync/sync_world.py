"""Both sandboxes in process, the real clients, a real Store and the default mapping: a `World`.

The Partner Center sandbox and the Salesforce sandbox run as ASGI apps behind
`httpx.ASGITransport`; msal (synchronous, in a worker thread) reaches the Partner Center
token endpoint through `LoopBridgeTransport`, which runs each request on the test's event loop.
Sandboxes, clients, tokens and store share one `ManualClock`: nothing sleeps for real, and
`World.tick()` moves time on so that a seller's edit gets a later `LastModifiedDate` than
the reconcile that read the record before it.

`World.microsoft` acts in Partner Center: Microsoft sending a referral (the control API), and
the partner's own user editing a referral in the Partner Center UI (a PATCH with a fresh
eTag, through a client of its own). `World.seller` edits Salesforce as the seller user through
the Salesforce control API, the way a person in the UI would (not the integration user, no
`Sforce-Call-Options`). `World.calls()` reads both sandboxes' `/control/stats` and counts API
calls (token and control calls excluded).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx

from cosell.clock import ManualClock
from cosell.mapping import load_mapping
from cosell.mapping.model import Mapping as Mapping_
from cosell.partnercenter.auth import (
    AppCredentials,
    InMemoryRefreshTokenStore,
    RefreshTokenProvider,
    RoutingHttpClient,
)
from cosell.partnercenter.client import ReferralsClient
from cosell.partnercenter.client import RetryPolicy as PcRetryPolicy
from cosell.partnercenter.models import ReferralId
from cosell.salesforce.auth import ClientCredentialsFlow
from cosell.salesforce.client import RetryPolicy as SfRetryPolicy
from cosell.salesforce.client import SalesforceClient
from cosell.store import Store
from cosell.store.types import Key, record_key, referral_key
from cosell.sync.io.context import SyncContext
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox
from cosell_sandbox.partnercenter.app import SandboxOptions as PcOptions
from cosell_sandbox.salesforce.app import SalesforceSandbox
from cosell_sandbox.salesforce.app import SandboxOptions as SfOptions

PC_BASE = "http://pc.sandbox.test"
SF_BASE = "http://sf.sandbox.test"
PC_API_PREFIX = "/v1.0/engagements"
SF_API_PREFIX = "/services/data"


class LoopBridgeTransport(httpx.BaseTransport):
    """A sync transport for msal in an anyio worker thread: the ASGI app runs on the loop."""

    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def send() -> httpx.Response:
            forwarded = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self._asgi.handle_async_request(forwarded)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return anyio.from_thread.run(send)


@dataclass(frozen=True)
class Calls:
    """API calls served by both sandboxes (token and control calls excluded)."""

    partner_center_reads: int
    partner_center_writes: int
    salesforce_reads: int
    salesforce_writes: int

    @property
    def reads(self) -> int:
        return self.partner_center_reads + self.salesforce_reads

    @property
    def writes(self) -> int:
        return self.partner_center_writes + self.salesforce_writes

    @property
    def total(self) -> int:
        return self.reads + self.writes

    def __sub__(self, other: Calls) -> Calls:
        return Calls(
            self.partner_center_reads - other.partner_center_reads,
            self.partner_center_writes - other.partner_center_writes,
            self.salesforce_reads - other.salesforce_reads,
            self.salesforce_writes - other.salesforce_writes,
        )


class Microsoft:
    """Partner Center as Microsoft and the partner's Partner Center users change it."""

    def __init__(self, http: httpx.AsyncClient, referrals: ReferralsClient) -> None:
        self._http = http
        self._referrals = referrals

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        response = await self._http.request(method, f"{PC_BASE}/control{path}", json=body)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    async def send_co_sell(self, **overrides: Any) -> dict[str, Any]:
        """Microsoft sends the partner a co-sell referral (Incoming, New/Pending)."""
        return await self.control("POST", "/referrals/incoming", {"kind": "co-sell", **overrides})

    async def send_lead(self, **overrides: Any) -> dict[str, Any]:
        """Microsoft sends the partner a lead (Incoming, New/Pending, MarketingQualified)."""
        return await self.control("POST", "/referrals/incoming", {"kind": "lead", **overrides})

    async def referral(self, referral_id: str) -> dict[str, Any]:
        """The partner's referral as the API returns it now."""
        referral = await self._referrals.get(ReferralId(referral_id))
        body: dict[str, Any] = referral.model_dump(by_alias=True, mode="json")
        return body

    async def referrals(self) -> list[dict[str, Any]]:
        """Every referral visible to the partner."""
        return [r.model_dump(by_alias=True, mode="json") async for r in self._referrals.list()]

    async def edit(self, referral_id: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        """A partner user edits the referral in Partner Center (JSON Patch, fresh eTag)."""
        current = await self._referrals.get(ReferralId(referral_id))
        updated = await self._referrals.patch(
            ReferralId(referral_id), operations, etag=current.e_tag
        )
        assert updated is not None
        body: dict[str, Any] = updated.model_dump(by_alias=True, mode="json")
        return body


class Seller:
    """Salesforce as the seller edits it in the UI (the control API, as the seller user)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def _control(self, method: str, path: str, body: Any = None) -> Any:
        response = await self._http.request(method, f"{SF_BASE}/control/{path}", json=body)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    async def create(self, sobject: str, fields: Mapping[str, Any]) -> str:
        """Create a record as the seller; its id."""
        body = await self._control("POST", f"records/{sobject}?as=seller", dict(fields))
        return str(body["id"])

    async def edit(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """Update a record as the seller."""
        await self._control("PATCH", f"records/{sobject}/{record_id}?as=seller", dict(fields))

    async def read(self, sobject: str, record_id: str) -> dict[str, Any]:
        """A record as stored (every field)."""
        body: dict[str, Any] = await self._control("GET", f"records/{sobject}/{record_id}")
        return body

    async def opportunity(self, record_id: str) -> dict[str, Any]:
        """An opportunity as stored."""
        return await self.read("Opportunity", record_id)

    async def create_account(self, name: str = "Fabrikam", **fields: Any) -> str:
        """An account with a billing address (what a referral's customer profile needs)."""
        return await self.create(
            "Account",
            {
                "Name": name,
                "BillingStreet": "1 Main St",
                "BillingCity": "Redmond",
                "BillingState": "WA",
                "BillingPostalCode": "98052",
                "BillingCountry": "US",
                **fields,
            },
        )

    async def create_opportunity(self, account_id: str, **fields: Any) -> str:
        """An open opportunity of `account_id`; Sync with Partner Center unless told otherwise."""
        return await self.create(
            "Opportunity",
            {
                "Name": "Fabrikam - Azure migration",
                "AccountId": account_id,
                "StageName": "Qualification",
                "CloseDate": "2026-06-30",
                "Amount": 25000,
                "CurrencyIsoCode": "USD",
                "Description": "first notes",
                "Sync_with_Partner_Center__c": True,
                **fields,
            },
        )


@dataclass
class World:
    """Both sandboxes, the reconcile's context, and the actors that change either side."""

    clock: ManualClock
    pc_sandbox: Any
    sf_sandbox: Any
    pc_http: httpx.AsyncClient
    sf_http: httpx.AsyncClient
    store: Store
    ctx: SyncContext
    microsoft: Microsoft
    seller: Seller

    def tick(self, seconds: float = 5.0) -> None:
        """Move the shared clock on (so the next edit is later than the last read)."""
        self.clock.advance(seconds)

    async def calls(self) -> Calls:
        """API calls both sandboxes have served so far."""
        pc = (await self.pc_http.get(f"{PC_BASE}/control/stats")).json()
        sf = (await self.sf_http.get(f"{SF_BASE}/control/stats")).json()
        pc_reads = pc_writes = sf_reads = sf_writes = 0
        for call in pc["calls"]:
            if call["route"].startswith(PC_API_PREFIX):
                if call["method"] == "GET":
                    pc_reads += call["count"]
                else:
                    pc_writes += call["count"]
        for call in sf["calls"]:
            if call["route"].startswith(SF_API_PREFIX) and "/oauth2" not in call["route"]:
                if call["method"] == "GET":
                    sf_reads += call["count"]
                else:
                    sf_writes += call["count"]
        return Calls(pc_reads, pc_writes, sf_reads, sf_writes)

    async def query(self, soql: str) -> list[dict[str, Any]]:
        """A SOQL query as the integration user (counted in the stats: take `calls()` after)."""
        return [row async for row in self.ctx.salesforce.query(soql)]

    async def opportunities_for(self, referral_id: str) -> list[dict[str, Any]]:
        """Every opportunity whose Referral_Identifier__c is `referral_id`."""
        return [
            o
            for o in self.sf_sandbox.store.rows("Opportunity", include_deleted=False)
            if o.get("Referral_Identifier__c") == referral_id
        ]

    async def shared_pair(self, **opportunity: Any) -> tuple[str, str]:
        """An opportunity shared from Salesforce and its referral, in sync: (opportunity id,
        referral id). Fields given override the opportunity's defaults."""
        from cosell.sync.run.reconcile import reconcile_key

        account_id = await self.seller.create_account()
        opp_id = await self.seller.create_opportunity(account_id, **opportunity)
        outcome = await reconcile_key(self.ctx, self.opportunity_key(opp_id))
        assert outcome.result == "created", outcome
        referral_id = (await self.seller.opportunity(opp_id))["Referral_Identifier__c"]
        self.tick()
        return opp_id, referral_id

    async def leads_for(self, referral_id: str) -> list[dict[str, Any]]:
        """Every Lead whose Referral_Identifier__c is `referral_id`."""
        return [
            row
            for row in self.sf_sandbox.store.rows("Lead", include_deleted=False)
            if row.get("Referral_Identifier__c") == referral_id
        ]

    def lead_key(self, record_id: str) -> Key:
        return record_key("Lead", record_id)

    def referral_key(self, referral_id: str) -> Key:
        return referral_key(referral_id)

    def opportunity_key(self, record_id: str) -> Key:
        return record_key("Opportunity", record_id)


def make_referrals_client(
    http: httpx.AsyncClient,
    entra: httpx.Client,
    info: dict[str, Any],
    clock: ManualClock,
    seed: int,
) -> ReferralsClient:
    """A Referrals client of the partner's user, its msal routed to the sandbox over `entra`."""
    credentials = AppCredentials(
        tenant_id=info["tenant_id"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        http_client=RoutingHttpClient(PC_BASE, entra),
    )
    tokens = RefreshTokenProvider(
        credentials, InMemoryRefreshTokenStore(info["refresh_token"]), clock=clock
    )
    return ReferralsClient(
        http,
        tokens,
        base_url=info["referrals_api"].removesuffix("/referrals"),
        clock=clock,
        retry=PcRetryPolicy(rng=random.Random(seed)),
    )


def make_salesforce_client(
    http: httpx.AsyncClient, info: dict[str, Any], clock: ManualClock
) -> SalesforceClient:
    flow = ClientCredentialsFlow(
        info["consumer_key"], info["consumer_secret"], info["token_url"], clock=clock
    )
    return SalesforceClient(http, flow, clock=clock, retry=SfRetryPolicy(random=random.Random(2)))


@asynccontextmanager
async def build_world(
    directory: Path,
    key_dir: Path,
    *,
    org_profile: Any = None,
    mapping: Mapping_ | None = None,
    **pc_options: Any,
) -> AsyncIterator[World]:
    """Both sandboxes in process, the real clients and a store in `directory`, on one ManualClock.

    `org_profile` customises the Salesforce sandbox (`cosell_sandbox.salesforce.orgprofile`);
    `mapping` replaces the default mapping.
    """
    clock = ManualClock()
    hooks = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200)))
    pc_sandbox = PartnerCenterSandbox(
        base_url=PC_BASE,
        clock=clock,
        options=PcOptions(seed=11, **pc_options),
        webhook_client=hooks,
    )
    sf_sandbox = SalesforceSandbox(
        base_url=SF_BASE,
        clock=clock,
        options=SfOptions(seed=1, key_dir=key_dir, org_profile=org_profile),
    )
    pc_info = pc_sandbox.info()
    sf_info = dict(sf_sandbox.info())
    pc_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=pc_sandbox.app), base_url=PC_BASE)
    sf_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sf_sandbox.app), base_url=SF_BASE)
    entra = httpx.Client(transport=LoopBridgeTransport(pc_sandbox.app), base_url=PC_BASE)
    store = Store.open(f"sqlite:///{directory / 'cosell.db'}", clock=clock)
    ctx = SyncContext(
        partner_center=make_referrals_client(pc_http, entra, pc_info, clock, seed=3),
        salesforce=make_salesforce_client(sf_http, sf_info, clock),
        store=store,
        mapping=mapping if mapping is not None else load_mapping(),
        clock=clock,
    )
    partner_user = make_referrals_client(pc_http, entra, pc_info, clock, seed=4)
    try:
        yield World(
            clock=clock,
            pc_sandbox=pc_sandbox,
            sf_sandbox=sf_sandbox,
            pc_http=pc_http,
            sf_http=sf_http,
            store=store,
            ctx=ctx,
            microsoft=Microsoft(pc_http, partner_user),
            seller=Seller(sf_http),
        )
    finally:
        store.close()
        await pc_http.aclose()
        await sf_http.aclose()
        await hooks.aclose()
        entra.close()  # noqa: ASYNC212 - an in-process transport: closing does no I/O
        sf_sandbox.close()
