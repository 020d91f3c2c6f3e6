"""The Partner Center client against the sandbox, in process (fixture `pc` in conftest.py).

The APIs are reached over `httpx.ASGITransport`; msal (synchronous, in a worker thread) reaches
the sandbox's token endpoint through `RoutingHttpClient` over `LoopBridgeTransport`, which runs
each request on the test's own event loop, so no server and no socket is involved. Sandbox and
client share one `ManualClock`: Retry-After waits, token expiry and the 14-day referral expiry
all happen without real sleeping.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import anyio.from_thread
import httpx
from cryptography import x509

from cosell.clock import ManualClock
from cosell.partnercenter.auth import (
    AppCredentials,
    InMemoryRefreshTokenStore,
    RefreshTokenProvider,
)
from cosell.partnercenter.client import ReferralsClient, RetryPolicy
from cosell.partnercenter.models import (
    Consent,
    CustomerProfile,
    NewReferral,
    ReferralDetails,
    ReferralType,
)
from cosell.partnercenter.webhooks import SignatureVerifier, WebhooksClient
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox

BASE = "http://testserver"


class LoopBridgeTransport(httpx.BaseTransport):
    """A sync transport for code running in an anyio worker thread: the ASGI app runs on the loop."""

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


@dataclass
class Callback:
    body: bytes
    headers: dict[str, str]


@dataclass
class PartnerCenter:
    sandbox: PartnerCenterSandbox
    clock: ManualClock
    info: dict[str, Any]
    http: httpx.AsyncClient
    credentials: AppCredentials
    store: InMemoryRefreshTokenStore
    user_tokens: RefreshTokenProvider
    referrals: ReferralsClient
    webhooks: WebhooksClient
    callbacks: list[Callback] = field(default_factory=list)

    def referrals_client(self, tokens: Any, **kwargs: Any) -> ReferralsClient:
        kwargs.setdefault("retry", RetryPolicy(rng=random.Random(5)))
        return ReferralsClient(
            self.http,
            tokens,
            base_url=self.info["referrals_api"].removesuffix("/referrals"),
            clock=self.clock,
            **kwargs,
        )

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.http.request(method, f"{BASE}/control{path}", json=body)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    async def verifier(self, **kwargs: Any) -> SignatureVerifier:
        ca = await self.http.get(self.info["ca_certificate_url"])
        root = x509.load_der_x509_certificate(ca.content)
        kwargs.setdefault("allowed_certificate_urls", [f"{BASE}/cert/"])
        return SignatureVerifier(self.http, trusted_roots=[root], clock=self.clock, **kwargs)


def new_referral(name: str = "Fabrikam - Azure migration", **overrides: Any) -> NewReferral:
    fields: dict[str, Any] = {
        "name": name,
        "type": ReferralType.INDEPENDENT,
        "customer_profile": CustomerProfile.model_validate(
            {
                "name": "Fabrikam",
                "address": {
                    "addressLine1": "1 Main St",
                    "city": "Redmond",
                    "state": "WA",
                    "postalCode": "98052",
                    "country": "US",
                },
                "team": [{"firstName": "Ann", "lastName": "Lee", "email": "ann@fabrikam.example"}],
            }
        ),
        "consent": Consent(consent_to_share_referral_with_microsoft_sellers=False),
        "details": ReferralDetails.model_validate(
            {
                "dealValue": 25000,
                "currency": "USD",
                "closingDateTime": "2026-06-30T00:00:00Z",
                "notes": "first notes",
            }
        ),
        "external_reference_id": "006000000000001AAA",
    }
    fields.update(overrides)
    return NewReferral.model_validate(fields)
