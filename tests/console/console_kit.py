"""Helpers of the console's tests: seeded deals, a recording notify, signing in."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from cosell.clock import ManualClock
from cosell.server.console import ConsoleOptions, Notify, create_console
from cosell.server.console.usage import ApiUsage
from cosell.store import Store, SyncStatus
from cosell.store.types import Link, canonical_record_id
from cosell.tokenhealth import TokenHealth

OPERATOR_PASSWORD = "operator password 1"
VIEWER_PASSWORD = "viewer password 12"
FAST_SCRYPT = 2**10  # the tests' hashes: the parameters are stored with each hash
PC_UI = "https://partner.microsoft.com/dashboard/referrals/v2/leads"
SF_INSTANCE = "https://example.my.salesforce.com"


def record_id(number: int) -> str:
    """A valid 18-character opportunity id."""
    return canonical_record_id(f"006{number:012d}")


@dataclass
class Deals:
    """The seeded deals, by role in the tests."""

    synced: Link
    failing: Link
    pending: Link
    others: list[Link] = field(default_factory=list)


@dataclass
class Notified:
    """A stand-in for `Engine.notify`: records the keys; says 'enqueued' the first time."""

    keys: list[str] = field(default_factory=list)

    async def __call__(self, key: str) -> bool:
        first = key not in self.keys
        self.keys.append(key)
        return first


@dataclass
class SyncedNow:
    """A stand-in for the engine's `run_keys` (what `cosell sync KEY` runs): records the keys."""

    keys: list[list[str]] = field(default_factory=list)
    ok: bool = True

    async def __call__(self, keys: list[str]) -> bool:
        self.keys.append(list(keys))
        return self.ok


def seed(store: Store, clock: ManualClock) -> Deals:
    """Three named deals (Synced with a conflict, Error, Pending) and 60 more Synced ones.

    Directions: Contoso Outgoing, Fabrikam and Northwind Incoming, the bulk deals alternately
    Incoming (even) and Outgoing (odd). Stages: Contoso `Qualify`, Fabrikam `New/Pending`,
    every third bulk deal (0, 3, …) `Closed/Won`, the others `Active/Accepted`.
    """
    # Shared from Salesforce (the record first: Outgoing), then its referral id filled in.
    store.create_link(sobject="Opportunity", record_id=record_id(1))
    synced = store.create_link(
        sobject="Opportunity", referral_id="ref-contoso", record_id=record_id(1)
    )
    store.save_snapshot(
        synced.id,
        {"name": "Contoso cloud migration", "customer_name": "Contoso Ltd", "stage": "Qualify"},
    )
    store.record_conflict(
        synced.id,
        field="stage",
        partner_center="Qualify",
        salesforce="Develop",
        base="New",
        winner="partner_center",
    )
    store.record_audit(synced.id, "synced 2 fields to Salesforce")
    synced = store.update_link(synced.id, sync_status=SyncStatus.SYNCED, last_synced_at=clock.now())
    clock.advance(60)
    # Microsoft's referral (the referral first: Incoming), then its opportunity.
    store.create_link(sobject="Opportunity", referral_id="ref-fabrikam")
    failing = store.create_link(
        sobject="Opportunity", referral_id="ref-fabrikam", record_id=record_id(2)
    )
    store.save_snapshot(
        failing.id,
        {"name": "Fabrikam 50% deal", "customer_name": "Fabrikam Inc", "stage": "New/Pending"},
    )
    store.record_audit(
        failing.id,
        "error: Salesforce refused the update: FIELD_CUSTOM_VALIDATION_EXCEPTION CloseDate",
    )
    failing = store.update_link(
        failing.id,
        sync_status=SyncStatus.ERROR,
        last_error="Salesforce refused the update: FIELD_CUSTOM_VALIDATION_EXCEPTION CloseDate",
    )
    clock.advance(60)
    pending = store.create_link(sobject="Opportunity", referral_id="ref-northwind")
    store.save_snapshot(pending.id, {"name": "Northwind renewal", "customer_name": "Northwind"})
    others = []
    for number in range(60):
        clock.advance(1)
        # Even: Microsoft's referrals (Incoming); odd: shared by the partner (Outgoing).
        if number % 2 == 0:
            store.create_link(sobject="Opportunity", referral_id=f"ref-bulk-{number:03d}")
        else:
            store.create_link(sobject="Opportunity", record_id=record_id(100 + number))
        link = store.create_link(
            sobject="Opportunity",
            referral_id=f"ref-bulk-{number:03d}",
            record_id=record_id(100 + number),
        )
        stage = "Active/Accepted" if number % 3 else "Closed/Won"
        store.save_snapshot(
            link.id, {"name": f"Bulk deal {number:03d}", "customer_name": "Adatum", "stage": stage}
        )
        others.append(
            store.update_link(link.id, sync_status=SyncStatus.SYNCED, last_synced_at=clock.now())
        )
    return Deals(synced=synced, failing=failing, pending=pending, others=others)


def usage(clock: ManualClock) -> list[ApiUsage]:
    """What `cosell serve` would report: calls counted, Salesforce's usage against a budget."""
    return [
        ApiUsage("partner_center", "Partner Center", calls=120, throttled=2),
        ApiUsage(
            "salesforce",
            "Salesforce",
            calls=340,
            used=4200,
            limit=15000,
            budget=5000,
            observed_at=clock.now(),
        ),
    ]


def tokens(clock: ManualClock) -> list[TokenHealth]:
    """Partner Center's refresh token close to its inactivity expiry; Salesforce's fine."""
    return [
        TokenHealth(
            side="partner_center",
            grant="refresh_token (device_code)",
            mfa=True,
            used_at=clock.now(),
            days_left=5.0,
            warning="the refresh token expires in 5 days unless used: run "
            "`cosell connect partner-center`",
        ),
        TokenHealth(side="salesforce", grant="jwt"),
    ]


def console_app(
    store: Store,
    clock: ManualClock,
    users_file: Path,
    notify: Notify | None,
    sync_now: SyncedNow | None = None,
) -> Starlette:
    async def salesforce_base() -> str | None:
        return SF_INSTANCE

    options = ConsoleOptions(
        users_file=users_file,
        partner_center_ui_url=PC_UI,
        salesforce_base=salesforce_base,
        api_usage=lambda: usage(clock),
        token_health=lambda: tokens(clock),
        sync_now=sync_now,
    )
    console = create_console(store=store, clock=clock, options=options, notify=notify)
    return Starlette(routes=[Mount("/console", app=console)])


def sign_in(client: TestClient, user: str, password: str) -> None:
    """Sign in through the form, as a browser does (login token included)."""
    form = client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None, form.text
    answer = client.post(
        "/console/login",
        data={"username": user, "password": password, "login_token": token.group(1)},
    )
    assert answer.status_code == 303, answer.text


def csrf_of(html: str) -> str:
    """The CSRF token of the first acting form on a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


PC_SANDBOX = "http://127.0.0.1:9"  # the Partner Center sandbox's base URL when run in process


def sso_options(sandbox: Any, http: httpx.AsyncClient, clock: ManualClock, **roles: Any) -> Any:
    """The console's Entra sign-in against the Partner Center sandbox's identity endpoints."""
    from cosell.partnercenter.oidc import EntraApp, EntraSignIn
    from cosell.server.console.sso import SsoOptions

    info = sandbox.identity.info()
    app = EntraApp(
        authority=sandbox.base_url,
        tenant=info["tenant_id"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
    )
    return SsoOptions(sign_in=EntraSignIn(app, http=http, clock=clock), **roles)


def sso_console_app(
    store: Store, clock: ManualClock, users_file: Path, notify: Notify | None, sso: Any
) -> Starlette:
    """`console_app` with sign-in with Microsoft."""

    async def salesforce_base() -> str | None:
        return SF_INSTANCE

    options = ConsoleOptions(
        users_file=users_file,
        partner_center_ui_url=PC_UI,
        salesforce_base=salesforce_base,
        sso=sso,
    )
    console = create_console(store=store, clock=clock, options=options, notify=notify)
    return Starlette(routes=[Mount("/console", app=console)])
