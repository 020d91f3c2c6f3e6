"""Helpers for tests of the Salesforce sandbox (imported by name; not a conftest)."""

from __future__ import annotations

from typing import Any

import httpx

from cosell_sandbox.salesforce.app import SalesforceSandbox

SF_BASE_URL = "http://sf.sandbox.test"
V = "/services/data/v59.0"


async def login(client: httpx.AsyncClient, sandbox: SalesforceSandbox) -> str:
    """An access token of the integration user (OAuth username-password grant)."""
    info = sandbox.info()
    response = await client.post(
        "/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": info["consumer_key"],
            "client_secret": info["consumer_secret"],
            "username": info["username"],
            "password": info["password"] + info["security_token"],
        },
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert isinstance(token, str)
    return token


async def create(sf: httpx.AsyncClient, type_: str, body: dict[str, Any], version: str = V) -> str:
    """Create a record over REST and return its id (asserting 201)."""
    response = await sf.post(f"{version}/sobjects/{type_}/", json=body)
    assert response.status_code == 201, response.text
    new_id = response.json()["id"]
    assert isinstance(new_id, str)
    return new_id


async def opportunity(sf: httpx.AsyncClient, **fields: Any) -> str:
    """Create an Opportunity with the required fields (overridable)."""
    body = {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31", **fields}
    return await create(sf, "Opportunity", body)


async def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The single error item of a Salesforce error array body, asserting the status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list), body
    assert len(body) == 1, body
    item = body[0]
    assert isinstance(item, dict)
    return item
