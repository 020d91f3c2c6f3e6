"""The Salesforce sandbox in process, and the few control-API calls the client's contract tests use.

Everything that depends on the sandbox's construction or its control API is here, so the
contract tests themselves read as plain client calls.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx

from cosell.clock import ManualClock
from cosell.salesforce.auth import (
    AuthFlow,
    ClientCredentialsFlow,
    JwtBearerFlow,
    PasswordFlow,
    RefreshTokenFlow,
)
from cosell.salesforce.client import RetryPolicy, SalesforceClient

BASE = "http://sf.sandbox.test"


def make_sandbox(clock: ManualClock, key_dir: Path, *, schema: Any = None, **options: Any) -> Any:
    from cosell_sandbox.salesforce.app import SalesforceSandbox, SandboxOptions

    return SalesforceSandbox(
        base_url=BASE,
        clock=clock,
        options=SandboxOptions(seed=1, key_dir=key_dir, **options),
        schema=schema,
    )


def schema_with_a_non_unique_external_id() -> Any:
    """Our org schema plus `Opportunity.Legacy_Id__c`, an external id that is not unique.

    Salesforce lets an admin mark a field External ID without Unique; an upsert on a value
    two records share then answers 300. Our own `Referral_Identifier__c` is unique, so this
    is the only way to reach that answer.
    """
    from cosell_sandbox.salesforce.orgschema import build_schema
    from cosell_sandbox.salesforce.schema import FieldSchema

    schema = build_schema()
    opportunity = schema.sobject("Opportunity")
    assert opportunity is not None
    opportunity.add_field(
        FieldSchema(
            name="Legacy_Id__c", label="Legacy Id", type="string", length=50, external_id=True
        )
    )
    return schema


def flows(info: dict[str, str], clock: ManualClock) -> dict[str, AuthFlow]:
    return {
        "jwt": JwtBearerFlow(
            info["consumer_key"],
            info["username"],
            Path(info["private_key_path"]).read_text(),
            login_url=info["login_url"],
            clock=clock,
        ),
        "client_credentials": ClientCredentialsFlow(
            info["consumer_key"], info["consumer_secret"], info["token_url"], clock=clock
        ),
        "client_credentials_body": ClientCredentialsFlow(
            info["consumer_key"],
            info["consumer_secret"],
            info["token_url"],
            use_basic_auth=False,
            clock=clock,
        ),
        "refresh_token": RefreshTokenFlow(
            info["consumer_key"],
            info["consumer_secret"],
            info["refresh_token"],
            info["token_url"],
            clock=clock,
        ),
        "password": PasswordFlow(
            info["consumer_key"],
            info["consumer_secret"],
            info["username"],
            info["password"],
            info["security_token"],
            info["token_url"],
            clock=clock,
        ),
    }


def make_client(
    http: httpx.AsyncClient, flow: AuthFlow, clock: ManualClock, **kw: Any
) -> SalesforceClient:
    kw.setdefault("retry", RetryPolicy(random=random.Random(1)))
    return SalesforceClient(http, flow, clock=clock, **kw)


async def control(http: httpx.AsyncClient, method: str, path: str, json: Any = None) -> Any:
    response = await http.request(method, f"{BASE}/control/{path}", json=json)
    response.raise_for_status()
    return response.json() if response.content else None


async def expire_sessions(http: httpx.AsyncClient) -> None:
    await control(http, "POST", "sessions/expire")


FAULT_NAMES = {
    "server_unavailable": "error_503_fraction",
    "unable_to_lock_row": "lock_row_fraction",
    "request_limit_exceeded": "request_limit_fraction",
    "expire_sessions": "expire_sessions_fraction",
}


async def set_faults(http: httpx.AsyncClient, **fractions: float) -> None:
    """Set fault fractions by the client's names for them (the sandbox's names differ)."""
    await control(http, "PUT", "faults", {FAULT_NAMES[k]: v for k, v in fractions.items()})


async def edit_as_user(
    http: httpx.AsyncClient, sobject: str, record_id: str, fields: dict[str, Any]
) -> None:
    await control(http, "PATCH", f"records/{sobject}/{record_id}", fields)
