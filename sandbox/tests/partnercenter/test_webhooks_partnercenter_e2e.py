"""Webhooks through the whole Partner Center sandbox: a referral created over the Referrals API
reaches the registered URL as a signed callback whose ResourceUri can be fetched.

Uses the assembled `PartnerCenterSandbox` (identity, webhooks and referrals wired together) in
process, with the callback receiver on an httpx MockTransport and time on a ManualClock.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.verification import PolicyBuilder, Store
from pcsandbox_helpers import BASE_URL as BASE
from pcsandbox_helpers import referral_body

from cosell.clock import ManualClock
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox, SandboxOptions

HOOK_URL = "https://receiver.example/hooks"


class Receiver:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return httpx.Response(200)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def sandbox(receiver: Receiver) -> AsyncIterator[PartnerCenterSandbox]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as outbound:
        sb = PartnerCenterSandbox(
            base_url=BASE,
            clock=ManualClock(),
            options=SandboxOptions(seed=5),
            webhook_client=outbound,
        )
        yield sb
        await sb.aclose()


async def token(
    http: httpx.AsyncClient, sandbox: PartnerCenterSandbox, grant: str, resource: str
) -> str:
    info = sandbox.info()
    form = {
        "grant_type": grant,
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "resource": resource,
    }
    if grant == "refresh_token":
        form["refresh_token"] = info["refresh_token"]
    response = await http.post(f"/{info['tenant_id']}/oauth2/token", data=form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_created_referral_is_announced_by_a_signed_callback(
    sandbox: PartnerCenterSandbox, receiver: Receiver
) -> None:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        webhooks_token = await token(
            http, sandbox, "client_credentials", "https://api.partnercenter.microsoft.com"
        )
        registered = await http.post(
            "/webhooks/v1/registration",
            json={
                "WebhookUrl": HOOK_URL,
                "WebhookEvents": ["referral-created", "referral-updated"],
            },
            headers={"Authorization": f"Bearer {webhooks_token}"},
        )
        assert registered.status_code == 200, registered.text

        user = {
            "Authorization": "Bearer "
            + await token(http, sandbox, "refresh_token", "https://api.partner.microsoft.com")
        }
        created = await http.post("/v1.0/engagements/referrals", json=referral_body(), headers=user)
        assert created.status_code == 201, created.text
        referral_id = created.json()["id"]

        await sandbox.webhooks.drain()
        [callback] = receiver.requests
        body = json.loads(callback.content)
        assert body["EventName"] == "referral-created"
        assert body["ResourceUri"] == f"{BASE}/v1.0/engagements/referrals/{referral_id}"

        leaf = x509.load_der_x509_certificate(
            (await http.get(callback.headers["x-ms-certificate-url"])).content
        )
        ca = x509.load_der_x509_certificate((await http.get("/cert/sandbox-root-ca.cer")).content)
        PolicyBuilder().store(Store([ca])).time(datetime.now(UTC)).build_server_verifier(
            x509.DNSName("pcnotifications-dispatch.microsoft.com")
        ).verify(leaf, [])
        public_key = leaf.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey)
        scheme, _, signature = callback.headers["authorization"].partition(" ")
        assert scheme == "Signature"
        public_key.verify(
            base64.b64decode(signature), callback.content, padding.PKCS1v15(), hashes.SHA256()
        )

        # The notification is a hint: the receiver re-reads the referral with its own token.
        fetched = await http.get(body["ResourceUri"].removeprefix(BASE), headers=user)
        assert fetched.status_code == 200
        assert fetched.json()["id"] == referral_id
