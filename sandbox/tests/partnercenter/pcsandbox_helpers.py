"""Shared data and helpers of the Partner Center sandbox tests (fixtures are in conftest.py)."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from cosell_sandbox.partnercenter.app import PartnerCenterSandbox

BASE_URL = "http://pc.sandbox.test"
REFERRALS = "/v1.0/engagements/referrals"

MINIMAL_REFERRAL: dict[str, Any] = {
    "name": "Contoso - Azure migration",
    "type": "Independent",
    "qualification": "SalesQualified",
    "externalReferenceId": "0065g00000XyZabAAB",
    "customerProfile": {
        "name": "Contoso Ltd",
        "address": {
            "addressLine1": "1 Main St",
            "city": "Seattle",
            "state": "WA",
            "postalCode": "98101",
            "country": "US",
        },
        "size": "51to500employees",
        "team": [{"firstName": "Ana", "lastName": "Buyer", "email": "ana@contoso.example"}],
    },
    "consent": {
        "consentToContact": True,
        "consentToToShareInfoWithOthers": False,
        "consentToShareReferralWithMicrosoftSellers": False,
    },
    "details": {
        "notes": "first note",
        "dealValue": 25000,
        "currency": "USD",
        "closingDateTime": "2026-06-30T00:00:00Z",
        "requirements": {"solutions": [{"id": "SOL-34104-EBB", "type": "Name"}]},
    },
    "team": [{"firstName": "Sam", "lastName": "Seller", "email": "sam@partner.example"}],
}


def referral_body(**overrides: Any) -> dict[str, Any]:
    """A valid create body; top-level keys in `overrides` replace the defaults."""
    body = copy.deepcopy(MINIMAL_REFERRAL)
    body.update(copy.deepcopy(overrides))
    return body


def co_sell_body(**overrides: Any) -> dict[str, Any]:
    """A create body that asks Microsoft for help (so it is shared with Microsoft)."""
    body = referral_body(type="Shared", **overrides)
    body["consent"]["consentToShareReferralWithMicrosoftSellers"] = True
    body["inviteContext"] = {"assistanceRequestCode": "ProofOfConceptOrDemo", "notes": "help!"}
    return body


async def user_token(
    client: httpx.AsyncClient,
    sandbox: PartnerCenterSandbox,
    resource: str = "https://api.partner.microsoft.com",
) -> str:
    """A real access token from the sandbox's v1 token endpoint.

    The refresh-token grant with the consented (MFA) refresh token: password-grant tokens carry
    no MFA and Partner Center refuses them (900421).
    """
    info = sandbox.info()
    response = await client.post(
        f"/{info['tenant_id']}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "resource": resource,
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "refresh_token": info["refresh_token"],
            "scope": "openid",
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])
