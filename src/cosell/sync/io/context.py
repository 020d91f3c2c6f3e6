"""What a reconcile needs, in one object: both clients, the store, the mapping, the clock.

`SyncContext` is built once per process (`build_context` from `Settings`, or by hand in tests
over in-process sandboxes) and handed to every reconcile. It holds no per-reconcile state:
each reconcile counts its own API calls in an `ApiCalls` of its own, so concurrent reconciles
of different keys never mix their numbers.

Failpoints let a test stop a reconcile at a named point, to prove that a crash there is
repaired by running the reconcile again (DESIGN.md: "a crash at any point is repaired by
running the reconcile again"). A name in `SyncContext.failpoints` raises `FailpointError`
(in-process tests); the environment variable `COSELL_FAILPOINT=<name>` ends the whole process
at once with exit status 137, as a `kill -9` would (the engine's worker-kill test). Points:

- `after-referral-create`: the referral was POSTed; nothing of it is recorded yet.
- `after-opportunity-upsert`: the opportunity of an incoming referral exists; the link does not
  know it yet.
- `after-notes`: a reconcile's Notes (Microsoft's, the Partner Center notes history) exist on
  the opportunity; neither side's fields are written yet.
- `after-writes`: both sides are written; the base snapshot is not saved yet.
- `after-lead-upsert`: the Lead of a lead referral exists; the link does not know it yet.
- `after-lead-convert`: the Lead was converted; the link still names the Lead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cosell.clock import Clock
from cosell.config import ConfigError, Settings
from cosell.mapping import Mapping as SyncMapping
from cosell.mapping import OpportunityFields, load_mapping
from cosell.partnercenter.auth import (
    REFERRALS_SCOPE,
    AppCredentials,
    ClientCredentialsProvider,
    PasswordProvider,
    RefreshTokenProvider,
    RoutingHttpClient,
    TokenProvider,
)
from cosell.partnercenter.client import ReferralsClient
from cosell.partnercenter.client import RetryPolicy as PartnerCenterRetryPolicy
from cosell.partnercenter.models import Referral
from cosell.salesforce.client import RetryPolicy as SalesforceRetryPolicy
from cosell.salesforce.client import SalesforceClient
from cosell.store import Store
from cosell.sync.plan.errors import FailpointError

FAILPOINT_ENV = "COSELL_FAILPOINT"
FAILPOINT_EXIT_STATUS = 137  # what a shell reports for a process killed by SIGKILL (128 + 9)
DEFAULT_PARTNER_CENTER_UI_URL = "https://partner.microsoft.com/dashboard/referrals/v2/leads"


@dataclass
class ApiCalls:
    """API calls made by one reconcile (or one batch), by side."""

    partner_center: int = 0
    salesforce: int = 0

    @property
    def total(self) -> int:
        """Calls on both sides."""
        return self.partner_center + self.salesforce


@dataclass
class SyncContext:
    """Everything a reconcile reads and writes through.

    Attributes:
        partner_center: the Referrals API client (App+User tokens).
        salesforce: the Salesforce REST client (the integration user).
        store: links, base snapshots, audit, conflicts, create intents.
        mapping: the field mapping (`cosell.mapping.load_mapping`).
        clock: the time audit entries and `last_synced_at` carry.
        tenant: the connection id the store's rows carry.
        dry_run: read and plan, write nothing anywhere (not even the store).
        partner_center_ui_url: where a referral is opened in Partner Center's dashboard;
            `Referral_Link__c` is `<this>/<referral id>`.
        failpoints: names of failpoints that raise `FailpointError` (tests).
        listed: referrals a pass just listed, by id, for the batch at hand: the batch uses
            them instead of reading them again (empty: it reads what it needs). The engine
            sets it on a copy of the context per batch (`dataclasses.replace`).
        lead_sync: lead referrals become Leads, converted on acceptance (`leads.py`).
        hold_wins: hold a win until 72 hours after the referral's creation, for deal
            registration (`[sync] hold_wins_for_registration`, `rules.ReferralState`).
    """

    partner_center: ReferralsClient
    salesforce: SalesforceClient
    store: Store
    mapping: SyncMapping
    clock: Clock
    tenant: str = "default"
    dry_run: bool = False
    partner_center_ui_url: str = DEFAULT_PARTNER_CENTER_UI_URL
    failpoints: set[str] = field(default_factory=set)
    listed: Mapping[str, Referral] = field(default_factory=dict)
    lead_sync: bool = False
    hold_wins: bool = True
    owned_http: list[httpx.AsyncClient | httpx.Client] = field(default_factory=list, repr=False)

    async def aclose(self) -> None:
        """Close the HTTP clients `build_context` made (not the store, not clients passed in)."""
        for client in self.owned_http:
            if isinstance(client, httpx.AsyncClient):
                await client.aclose()
            else:
                client.close()
        self.owned_http.clear()

    @property
    def fields(self) -> OpportunityFields:
        """The opportunity fields cosell writes itself, as the mapping names them."""
        return self.mapping.opportunity

    def referral_link(self, referral_id: str) -> str:
        """The Partner Center dashboard URL of a referral (for `Referral_Link__c`)."""
        return f"{self.partner_center_ui_url.rstrip('/')}/{referral_id}"

    def failpoint(self, name: str) -> None:
        """Stop here when a test asked for it (see the module docstring).

        Raises:
            FailpointError: `name` is in `failpoints`.
        """
        if os.environ.get(FAILPOINT_ENV) == name:
            os._exit(FAILPOINT_EXIT_STATUS)
        if name in self.failpoints:
            raise FailpointError(f"failpoint {name!r} fired")


def build_context(
    settings: Settings,
    *,
    store: Store,
    clock: Clock,
    pc_http: httpx.AsyncClient | None = None,
    sf_http: httpx.AsyncClient | None = None,
    msal_http_client: Any = None,
) -> SyncContext:
    """Build both clients and the mapping from settings.

    Args:
        settings: cosell's settings (`cosell.toml` and `COSELL_*`).
        store: the opened store (its tenant is the context's).
        clock: the clock for clients, tokens and audit times.
        pc_http: the HTTP client for Partner Center (tests route it in process); a new
            `httpx.AsyncClient`, closed by `SyncContext.aclose`, when None.
        sf_http: the HTTP client for Salesforce; likewise.
        msal_http_client: msal's `http_client`; None builds a `RoutingHttpClient` when
            `partner_center.route_to` is set (the sandbox), else msal uses its own.

    Returns:
        The context, dry run as `settings.sync.dry_run` says.

    Raises:
        ConfigError: a credential the configured sign-in needs is missing.
        MappingError: the mapping file is invalid (every problem with its place).
    """
    pc = settings.partner_center
    missing = pc.missing()
    if missing:
        keys = ", ".join(f"partner_center.{key}" for key in missing)
        raise ConfigError(
            f"[partner_center] auth = {pc.auth!r} needs {keys}: set them in cosell.toml or as "
            "COSELL_PARTNER_CENTER__<KEY> environment variables"
        )
    flow = settings.salesforce.auth_flow(clock=clock)
    mapping_file = settings.sync.mapping_file
    mapping = load_mapping(Path(mapping_file) if mapping_file else None)
    owned: list[httpx.AsyncClient | httpx.Client] = []
    # One TLS context for the clients made here: loading the CA bundle costs ~0.1-0.25 s of CPU
    # each time (what `cosell plan` and `cosell sync` start-ups spent three times over).
    tls = httpx.create_ssl_context() if pc_http is None or sf_http is None or pc.route_to else True
    if pc_http is None:
        pc_http = httpx.AsyncClient(verify=tls)
        owned.append(pc_http)
    if sf_http is None:
        sf_http = httpx.AsyncClient(verify=tls)
        owned.append(sf_http)
    if msal_http_client is None and pc.route_to:
        routed = httpx.Client(verify=tls)
        owned.append(routed)
        msal_http_client = RoutingHttpClient(pc.route_to, routed)
    tokens = partner_center_tokens(settings, clock=clock, msal_http_client=msal_http_client)
    # One retry layer: the engine's (`engine.backoff.BackoffPolicy`, which honours Retry-After).
    # The clients try each call once and keep only their 401 token refresh, so no call is
    # tried clients' attempts x engine's attempts times.
    return SyncContext(
        partner_center=ReferralsClient(
            pc_http,
            tokens,
            base_url=pc.api_base_url,
            clock=clock,
            retry=PartnerCenterRetryPolicy(max_attempts=1),
        ),
        salesforce=SalesforceClient(
            sf_http,
            flow,
            api_version=settings.salesforce.api_version,
            clock=clock,
            retry=SalesforceRetryPolicy(max_attempts=1),
        ),
        store=store,
        mapping=mapping,
        clock=clock,
        tenant=store.tenant,
        dry_run=settings.sync.dry_run,
        partner_center_ui_url=pc.ui_url,
        lead_sync=settings.sync.lead_sync,
        hold_wins=settings.sync.hold_wins_for_registration,
        owned_http=owned,
    )


def partner_center_tokens(
    settings: Settings, *, clock: Clock, msal_http_client: Any
) -> TokenProvider:
    """The Referrals API's token provider for `settings` (`cosell check` uses the same one)."""
    pc = settings.partner_center
    secret = pc.client_secret.get_secret_value() if pc.client_secret else None
    credentials = AppCredentials(
        tenant_id=pc.tenant_id or "",
        client_id=pc.client_id or "",
        client_secret=secret,
        authority_host=pc.authority_host,
        http_client=msal_http_client,
    )
    if pc.auth == "client_credentials":
        return ClientCredentialsProvider(credentials, scopes=(REFERRALS_SCOPE,), clock=clock)
    if pc.auth == "password":
        password = pc.password.get_secret_value() if pc.password else ""
        return PasswordProvider(credentials, pc.username or "", password, clock=clock)
    return RefreshTokenProvider(credentials, pc.refresh_token_store(clock), clock=clock)
