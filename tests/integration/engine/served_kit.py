"""Helpers for tests against the sandboxes served on loopback (the `sandboxes` fixture)."""

from __future__ import annotations

from typing import Any

import httpx

PC_API_PREFIX = "/v1.0/"
SF_API_PREFIX = "/services/data"


def incoming_lead(pc: dict[str, Any], name: str) -> str:
    response = httpx.post(
        f"{pc['base_url']}/control/referrals/incoming",
        json={"kind": "lead", "name": name},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def seller_creates(sf: dict[str, Any], sobject: str, fields: dict[str, Any]) -> str:
    response = httpx.post(
        f"{sf['base_url']}/control/records/{sobject}?as=seller", json=fields, timeout=10
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def shared_opportunity(sf: dict[str, Any], name: str) -> str:
    account = seller_creates(
        sf,
        "Account",
        {
            "Name": f"{name} Inc",
            "BillingStreet": "1 Main St",
            "BillingCity": "Redmond",
            "BillingState": "WA",
            "BillingPostalCode": "98052",
            "BillingCountry": "US",
        },
    )
    return seller_creates(
        sf,
        "Opportunity",
        {
            "Name": name,
            "AccountId": account,
            "StageName": "Qualification",
            "CloseDate": "2026-06-30",
            "Amount": 25000,
            "CurrencyIsoCode": "USD",
            "Sync_with_Partner_Center__c": True,
        },
    )


def api_writes(sandboxes: dict[str, Any]) -> dict[str, int]:
    """Write calls (not GET) each sandbox's API has served so far, from `/control/stats`."""
    writes = {}
    for side, prefix in (("partner_center", PC_API_PREFIX), ("salesforce", SF_API_PREFIX)):
        stats = httpx.get(f"{sandboxes[side]['base_url']}/control/stats", timeout=10).json()
        writes[side] = sum(
            call["count"]
            for call in stats["calls"]
            if call["route"].startswith(prefix)
            and "/oauth2" not in call["route"]
            and call["method"] != "GET"
        )
    return writes


def settings_toml(sandboxes: dict[str, Any], store_url: str) -> str:
    """cosell.toml for the served sandboxes and the store at `store_url`."""
    import json

    pc, sf = sandboxes["partner_center"], sandboxes["salesforce"]
    sections: dict[str, dict[str, Any]] = {
        "partner_center": {
            "auth": "refresh_token",
            "tenant_id": pc["tenant_id"],
            "client_id": pc["client_id"],
            "client_secret": pc["client_secret"],
            "refresh_token": pc["refresh_token"],
            "referrals_url": pc["referrals_api"],
            "webhooks_url": pc["webhooks_api"],
            "route_to": pc["base_url"],
        },
        "salesforce": {
            "auth": "client_credentials",
            "consumer_key": sf["consumer_key"],
            "consumer_secret": sf["consumer_secret"],
            "login_url": sf["login_url"],
            "token_url": sf["token_url"],
        },
        "store": {"url": store_url},
    }
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in keys.items())
        lines.append("")
    return "\n".join(lines)
