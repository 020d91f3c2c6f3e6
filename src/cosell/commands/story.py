"""The story `cosell demo` plays: both sandboxes and the connector in one process.

Mechanism. Three loopback sockets are bound first on free ports (`cosell_sandbox.serving.listen`),
so every app knows its own URL before it starts: the Partner Center sandbox, the Salesforce
sandbox and the cosell service (the app of `cosell serve`, with the DBOS engine in its
lifespan). All three run as uvicorn servers on one asyncio loop. The store (SQLite) and DBOS's
system database live in a temporary directory, removed at exit unless `--keep-running`.
Settings come from `Settings.for_sandboxes`, with a one-second poll interval (Salesforce edits
are picked up by the poller) and the service's webhook endpoint as `public_url`; the sandbox's
CA is downloaded before the service starts (asynchronously: the service's own download is a
blocking call, which on this shared loop would wait for a sandbox that cannot answer) and
handed over as `trusted_ca_file`. The webhook is registered with the Partner Center sandbox,
so Partner Center changes arrive as signed callbacks. Both sandboxes, the service and the store
share one `OffsetClock` (real time plus an offset): the story moves it three days on before the
win, since cosell holds a win until 72 hours after a referral was created (`[sync]
hold_wins_for_registration`, on by default: the wait deal registration asks for).

The story is a list of steps. Each step acts the way a person would, through the sandboxes'
control APIs over HTTP: the Microsoft seller through Partner Center's `/control/referrals/...`,
the partner's seller through Salesforce's `/control/records/...?as=seller` (a user's edit, so
its changeOrigin is not cosell's). Then it waits, on real time (bounded by `--step-timeout`,
polling every 50 ms), until the *other* side shows the expected result, and measures that
latency. The other side is read as it really is: Salesforce records through the control API,
Partner Center referrals from the sandbox's own state, and cosell's store only to learn which
record a referral became. Each step prints one line (what was done, what the other side now
shows, the latency); a table closes the story. The exit status is 0 only when every step
synced; a step that does not prints what it expected and what it saw, and the demo exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cosell.clock import OffsetClock
from cosell.commands.serve import build_service
from cosell.commands.webhooks import REFERRAL_EVENTS, run_register
from cosell.config import Settings
from cosell.partnercenter.models import DealType, Referral
from cosell.server.logs import configure_logging
from cosell.store import Store, SyncStatus
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox
from cosell_sandbox.partnercenter.app import SandboxOptions as PartnerCenterOptions
from cosell_sandbox.partnercenter.errors import PartnerCenterSandboxError
from cosell_sandbox.salesforce.app import SalesforceSandbox
from cosell_sandbox.salesforce.app import SandboxOptions as SalesforceOptions
from cosell_sandbox.salesforce.orgprofile import OrgProfileError, load_profile, record_type_id
from cosell_sandbox.serving import Listener, listen, make_server

POLL_SECONDS: Final = 0.05  # how often a step looks at the other side
POLL_INTERVAL_SECONDS: Final = 1  # the service's pollers: Salesforce edits are seen within ~1 s
START_TIMEOUT: Final = 30.0  # seconds the three servers may take to start (imports, DBOS)
GRACE_SECONDS: Final = 5.0  # shutdown: running reconciles get this long to finish
HTTP_TIMEOUT: Final = httpx.Timeout(10.0)

MICROSOFT_ACCEPTED: Final = "Microsoft accepted the co-sell"  # cosell's audit line for it
ON_HOLD, ACTIVE, WON, LOST = "Prospecting", "Qualification", "Closed Won", "Closed Lost"
WIN_WAIT_SECONDS: Final = 72 * 3600  # cosell holds a win until 72 hours after creation


def _today() -> date:
    return datetime.now(UTC).date()


class DemoError(Exception):
    """The demo could not be set up (a server did not start, the webhook was not registered)."""


@dataclass
class Seen:
    """What a probe of the other side found: whether it is what the step expects, and what."""

    ok: bool
    shows: str


@dataclass
class StepResult:
    """One step of the story, once played."""

    title: str
    did: str
    expected: str
    shows: str
    latency: float
    synced: bool


@dataclass
class World:
    """What the story acts on and looks at: both sandboxes, an HTTP client, cosell's store."""

    partner_center: PartnerCenterSandbox
    salesforce: SalesforceSandbox
    store: Store
    http: httpx.AsyncClient
    step_timeout: float
    results: list[StepResult] = field(default_factory=list)

    # ---- acting as people --------------------------------------------------------------

    async def microsoft(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A Microsoft seller's action on Partner Center's control API; the JSON answer."""
        response = await self.http.request(
            method, f"{self.partner_center.base_url}/control/{path}", json=body
        )
        if response.status_code not in (200, 201):
            raise DemoError(f"Partner Center refused {method} {path}: {response.text}")
        result: dict[str, Any] = response.json()
        return result

    async def seller_create(self, sobject: str, fields: dict[str, Any]) -> str:
        """The partner's seller creates a Salesforce record (as the seller user); its id."""
        response = await self.http.post(
            f"{self.salesforce.base_url}/control/records/{sobject}",
            params={"as": "seller"},
            json=fields,
        )
        if response.status_code != 201:
            raise DemoError(f"Salesforce refused to create a {sobject}: {response.text}")
        return str(response.json()["id"])

    async def seller_update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        """The partner's seller edits a Salesforce record (as the seller user)."""
        response = await self.http.patch(
            f"{self.salesforce.base_url}/control/records/{sobject}/{record_id}",
            params={"as": "seller"},
            json=fields,
        )
        if response.status_code != 204:
            raise DemoError(f"Salesforce refused to update {sobject} {record_id}: {response.text}")

    # ---- looking at each side ----------------------------------------------------------

    async def record(self, sobject: str, record_id: str) -> dict[str, Any]:
        """A Salesforce record as it is now."""
        response = await self.http.get(
            f"{self.salesforce.base_url}/control/records/{sobject}/{record_id}"
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def referral(self, referral_id: str) -> dict[str, Any]:
        """The partner's referral in Partner Center as it is now."""
        return self.partner_center.store.get(referral_id)

    def notes_on(self, record_id: str) -> list[tuple[str, str]]:
        """The Notes (ContentNote) linked to a Salesforce record: (title, text preview)."""
        store = self.salesforce.store
        linked = [
            str(link["ContentDocumentId"])
            for link in store.rows("ContentDocumentLink", include_deleted=False)
            if str(link.get("LinkedEntityId") or "")[:15] == record_id[:15]
        ]
        notes = (store.row("ContentNote", document) for document in linked)
        return [
            (str(note.get("Title") or ""), str(note.get("TextPreview") or ""))
            for note in notes
            if note is not None
        ]

    def opportunity_of(self, referral_id: str) -> str | None:
        """The opportunity cosell synced `referral_id` to, once the link is Synced."""
        link = self.store.link_for_referral(referral_id)
        if link is None or link.record_id is None or link.sync_status != SyncStatus.SYNCED:
            return None
        return link.record_id

    def referral_of(self, opportunity_id: str) -> str | None:
        """The referral cosell shared `opportunity_id` as, once the link is Synced."""
        link = self.store.link_for_record("Opportunity", opportunity_id)
        if link is None or link.referral_id is None or link.sync_status != SyncStatus.SYNCED:
            return None
        return link.referral_id

    # ---- one step ------------------------------------------------------------------------

    async def step(
        self,
        console: Console,
        title: str,
        did: str,
        expected: str,
        probe: Callable[[], Awaitable[Seen]],
    ) -> bool:
        """Wait until `probe` sees the expected result (or the step timeout); print the step.

        The latency runs from the moment the action was answered (this call) to the first look
        that finds the result on the other side, so it is accurate to `POLL_SECONDS`.
        """
        started = time.monotonic()
        deadline = started + self.step_timeout
        while True:
            try:
                seen = await probe()
            except (httpx.HTTPError, PartnerCenterSandboxError) as exc:
                seen = Seen(False, f"not readable yet ({type(exc).__name__})")
            latency = time.monotonic() - started
            if seen.ok or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
        self.results.append(StepResult(title, did, expected, seen.shows, latency, seen.ok))
        number = len(self.results)
        if seen.ok:
            console.print(
                f"[green]✔[/] [bold]{number}. {title}[/]  [cyan]{latency:6.2f} s[/]\n"
                f"     did:   {escape(did)}\n     shows: {escape(seen.shows)}"
            )
        else:
            console.print(
                f"[red]✘[/] [bold]{number}. {title}[/]  [red]not synced after "
                f"{self.step_timeout:g} s[/]\n     did:      {escape(did)}\n"
                f"     expected: {escape(expected)}\n     saw:      {escape(seen.shows)}"
            )
        return seen.ok


# ---- the story ---------------------------------------------------------------------------


async def play_story(world: World, console: Console) -> bool:
    """The co-sell story, step by step; True when every step synced.

    A step that does not sync ends the story only when later steps need its result (the
    records it made); otherwise the story goes on, so the output shows every step.
    """
    accepted, declined = await _two_referrals(world, console)
    if accepted is None or declined is None:
        return False
    if not await _accept(world, console, *accepted):
        return False
    if not await _decline(world, console, *declined):
        return False
    shared = await _share(world, console)
    if shared is None:
        return False
    opportunity_id, referral_id = shared
    microsoft = await _microsoft_accepts(world, console, opportunity_id, referral_id)
    value = await _change_value(world, console, opportunity_id, referral_id)
    won = await _won(world, console, opportunity_id, referral_id)
    return microsoft and value and won


async def _two_referrals(
    world: World, console: Console
) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    names = ("Contoso - Azure migration", "Adatum - Teams rollout")
    ids = [
        str(
            (await world.microsoft("POST", "referrals/incoming", {"kind": "co-sell", "name": n}))[
                "id"
            ]
        )
        for n in names
    ]
    found: dict[str, str] = {}

    async def probe() -> Seen:
        shows = []
        for referral_id, name in zip(ids, names, strict=True):
            record_id = world.opportunity_of(referral_id)
            if record_id is None:
                shows.append(f"no opportunity yet for {name!r}")
                continue
            opp = await world.record("Opportunity", record_id)
            if opp.get("Referral_Identifier__c") == referral_id and opp.get("StageName") == ON_HOLD:
                found[referral_id] = record_id
            shows.append(f"opportunity {opp.get('Name')!r} in {opp.get('StageName')}")
        return Seen(len(found) == len(ids), "; ".join(shows))

    ok = await world.step(
        console,
        "Microsoft shares two co-sell referrals",
        f"a Microsoft seller sent {names[0]!r} and {names[1]!r} (Partner Center)",
        f"two opportunities in Salesforce, in {ON_HOLD} (waiting for acceptance)",
        probe,
    )
    if not ok:
        return None, None
    first, second = ids
    return (first, found[first]), (second, found[second])


def _stage_reaches(
    world: World, referral_id: str, status: str, substatus: str
) -> Callable[[], Awaitable[Seen]]:
    async def probe() -> Seen:
        referral = world.referral(referral_id)
        now = f"{referral.get('status')}/{referral.get('substatus')}"
        return Seen(now == f"{status}/{substatus}", f"Partner Center referral is {now}")

    return probe


async def _accept(world: World, console: Console, referral_id: str, opportunity_id: str) -> bool:
    await world.seller_update("Opportunity", opportunity_id, {"StageName": ACTIVE})
    return await world.step(
        console,
        "The partner accepts one from Salesforce",
        f"the seller moved the opportunity from {ON_HOLD} to {ACTIVE} (Salesforce)",
        "the referral Active/Accepted in Partner Center",
        _stage_reaches(world, referral_id, "Active", "Accepted"),
    )


async def _decline(world: World, console: Console, referral_id: str, opportunity_id: str) -> bool:
    await world.seller_update("Opportunity", opportunity_id, {"StageName": LOST})
    return await world.step(
        console,
        "The partner declines the other from Salesforce",
        f"the seller closed the waiting opportunity as {LOST} (Salesforce)",
        "the referral Closed/Declined in Partner Center",
        _stage_reaches(world, referral_id, "Closed", "Declined"),
    )


async def _share(world: World, console: Console) -> tuple[str, str] | None:
    name = "Northwind - Copilot rollout"
    account = await world.seller_create("Account", {"Name": "Northwind", "BillingCountry": "US"})
    close = (_today() + timedelta(days=60)).isoformat()
    opportunity = await world.seller_create(
        "Opportunity",
        {
            "Name": name,
            "AccountId": account,
            "StageName": ACTIVE,
            "CloseDate": close,
            "Amount": 25000,
            "CurrencyIsoCode": "USD",
            # The seller's words: a Co-sell deal (help asked), for the FY26 taxonomy.
            "Deal_Type__c": "Co-sell",
            "How_can_Microsoft_help__c": "Proof of concept or demo",
            "Partner_Role__c": "Deployment services",
            "Solution_Area__c": "AI Business Solutions",
            "Solution_Play__c": "Copilot and Agents at Work",
            "Marketplace_Purchase_Intent__c": "Yes",
        },
    )
    await world.seller_create(
        "Microsoft_Solution__c",
        {
            "Opportunity__c": opportunity,
            "Name": "Microsoft 365 Copilot",
            "Solution_Id__c": "SOL-COPILOT-01",
            "Solution_Type__c": "Name",
        },
    )
    contact = await world.seller_create(
        "Contact",
        {"AccountId": account, "FirstName": "Ana", "LastName": "Silva", "Email": "ana@nw.example"},
    )
    await world.seller_create(
        "OpportunityContactRole",
        {"OpportunityId": opportunity, "ContactId": contact, "IsPrimary": True},
    )
    await world.seller_update("Opportunity", opportunity, {"Sync_with_Partner_Center__c": True})
    shared: list[str] = []

    async def probe() -> Seen:
        referral_id = world.referral_of(opportunity)
        if referral_id is None:
            return Seen(False, "no referral yet")
        referral = world.referral(referral_id)
        solutions = [s.get("name") for s in referral["details"]["requirements"]["solutions"]]
        team = [m.get("email") for m in referral.get("customerProfile", {}).get("team", [])]
        try:
            microsoft = world.partner_center.store.microsoft_referral(referral_id)
        except PartnerCenterSandboxError:
            microsoft = None
        deal_type = Referral.model_validate(referral).deal_type
        ok = (
            referral.get("type") == "Shared"
            and deal_type is DealType.CO_SELL
            and referral.get("solutionPlay") == "CopilotAndAgentsAtWork"
            and "Microsoft 365 Copilot" in solutions
            and "ana@nw.example" in team
            and microsoft is not None
        )
        if ok:
            shared.append(referral_id)
        return Seen(
            ok,
            f"referral {referral.get('name')!r} ({referral.get('type')}, {deal_type}, "
            f"{referral.get('solutionArea')}/{referral.get('solutionPlay')}), solutions {solutions}, "
            f"contact {team}, "
            + ("Microsoft has it in its queue" if microsoft else "not with Microsoft yet"),
        )

    ok = await world.step(
        console,
        "A seller shares a new opportunity with Microsoft",
        f"the seller ticked Sync with Partner Center on {name!r}, a Co-sell deal with its FY26 "
        "solution area and play, a solution and a contact (Salesforce)",
        "a shared co-sell referral with the solution play, the solution and the contact, in "
        "Microsoft's queue",
        probe,
    )
    return (opportunity, shared[0]) if ok else None


async def _microsoft_accepts(
    world: World, console: Console, opportunity_id: str, referral_id: str
) -> bool:
    note = "Customer confirmed a pilot for 500 seats"
    await world.microsoft("POST", f"referrals/{referral_id}/microsoft/accept")
    await world.microsoft("POST", f"referrals/{referral_id}/microsoft/notes", {"text": note})

    async def probe() -> Seen:
        opp = await world.record("Opportunity", opportunity_id)
        accepted = MICROSOFT_ACCEPTED in str(opp.get("Audit__c") or "")
        notes = world.notes_on(opportunity_id)
        titles = [title for title, text in notes if note in text]
        return Seen(
            accepted and bool(titles),
            f"audit {'says' if accepted else 'does not say'} {MICROSOFT_ACCEPTED!r}; "
            + (f"a Note {titles[0]!r} holds the note" if titles else "no Note with the note yet"),
        )

    return await world.step(
        console,
        "Microsoft accepts it and adds a note",
        f"a Microsoft seller accepted the co-sell and noted {note!r} (Partner Center)",
        f"the audit line {MICROSOFT_ACCEPTED!r} and a Note holding {note!r} on the opportunity",
        probe,
    )


async def _change_value(
    world: World, console: Console, opportunity_id: str, referral_id: str
) -> bool:
    close = _today() + timedelta(days=90)
    await world.seller_update(
        "Opportunity", opportunity_id, {"Amount": 61000, "CloseDate": close.isoformat()}
    )

    async def probe() -> Seen:
        details = world.referral(referral_id)["details"]
        value, closing = details.get("dealValue"), str(details.get("closingDateTime") or "")
        return Seen(
            value == 61000 and closing.startswith(close.isoformat()),
            f"deal value {value}, closing {closing[:10] or '-'}",
        )

    return await world.step(
        console,
        "The seller changes the deal value and close date",
        f"the seller set the amount to 61,000 and the close date to {close} (Salesforce)",
        f"deal value 61000 and closing {close} in Partner Center",
        probe,
    )


async def _won(world: World, console: Console, opportunity_id: str, referral_id: str) -> bool:
    # cosell holds a win until 72 hours after creation (deal registration): three days pass.
    world.partner_center.advance_clock(WIN_WAIT_SECONDS)
    await world.seller_update("Opportunity", opportunity_id, {"StageName": WON})
    return await world.step(
        console,
        "Three days later, the deal is won",
        f"the seller moved the opportunity to {WON} (Salesforce)",
        "the referral Closed/Won in Partner Center",
        _stage_reaches(world, referral_id, "Closed", "Won"),
    )


# ---- the customised org's story (`--org-profile`) ---------------------------------------

CUSTOMER = "Fabrikam Retail"
CUSTOMER_EMAIL = "ana.customer@fabrikam-retail.example"
ORG_ACTIVE = "Needs Analysis"  # the example mapping's active stage (Partner Deal's process)
ORG_RECORD_TYPE = "Partner_Deal"  # the example mapping's record_type


async def play_customised_story(world: World, console: Console) -> bool:
    """The story in the example customised org; True when every step synced.

    Written for `sandbox/examples/customised-org.yaml` with `customised-org-mapping.yaml`:

    1. Microsoft sends a referral for a customer the org already has (under another spelling
       of the country, so only the org's duplicate rules see it): the opportunity is linked to
       the existing account and contact, is a Partner Deal, and has the required Region.
    2. The seller accepts it; the org's Flow rewrites the next step on the stage change, and the
       Flow's value reaches Partner Center as the notes (cosell adopts it, never fights it).
    """
    found = await _known_customer(world, console)
    if found is None:
        return False
    return await _flow_rewrites(world, console, *found)


async def _known_customer(world: World, console: Console) -> tuple[str, str] | None:
    address = {"BillingStreet": "1 Main St", "BillingCity": "Redmond", "BillingState": "WA"}
    account = await world.seller_create(
        "Account",
        {"Name": CUSTOMER, "BillingPostalCode": "98052", "BillingCountry": "USA", **address},
    )
    contact = await world.seller_create(
        "Contact", {"LastName": "Customer", "FirstName": "Ana", "Email": CUSTOMER_EMAIL}
    )
    profile = {
        "name": CUSTOMER,
        "address": {
            "addressLine1": "1 Main St",
            "city": "Redmond",
            "state": "WA",
            "postalCode": "98052",
            "country": "US",
        },
        "team": [{"firstName": "Ana", "lastName": "Customer", "email": CUSTOMER_EMAIL}],
    }
    body = {"kind": "co-sell", "name": f"{CUSTOMER} - Azure migration", "customerProfile": profile}
    referral_id = str((await world.microsoft("POST", "referrals/incoming", body))["id"])
    partner_deal = record_type_id("Opportunity", ORG_RECORD_TYPE)
    found: list[str] = []

    async def probe() -> Seen:
        record_id = world.opportunity_of(referral_id)
        if record_id is None:
            return Seen(False, "no opportunity yet")
        opp = await world.record("Opportunity", record_id)
        roles = [
            row
            for row in world.salesforce.store.rows("OpportunityContactRole", include_deleted=False)
            if row.get("OpportunityId") == record_id
        ]
        ok = (
            opp.get("AccountId") == account
            and [r.get("ContactId") for r in roles] == [contact]
            and opp.get("RecordTypeId") == partner_deal
            and bool(opp.get("Region__c"))
        )
        if ok:
            found.append(record_id)
        same = "the existing" if opp.get("AccountId") == account else "a new"
        kind = ORG_RECORD_TYPE if opp.get("RecordTypeId") == partner_deal else "another"
        return Seen(
            ok,
            f"opportunity on {same} account {CUSTOMER!r}, {len(roles)} contact role(s), "
            f"record type {kind}, Region {opp.get('Region__c')}",
        )

    ok = await world.step(
        console,
        "Microsoft shares a referral for a customer the org already has",
        f"a Microsoft seller sent a co-sell referral for {CUSTOMER!r} (Partner Center); the "
        "org has the account (country 'USA') and the contact, guarded by duplicate rules",
        f"an opportunity on the existing account and contact, record type {ORG_RECORD_TYPE}, "
        "with the required Region from the mapping's defaults",
        probe,
    )
    return (found[0], referral_id) if ok else None


async def _flow_rewrites(
    world: World, console: Console, opportunity_id: str, referral_id: str
) -> bool:
    await world.seller_update("Opportunity", opportunity_id, {"StageName": ORG_ACTIVE})
    rewritten = f"Follow up: {ORG_ACTIVE}"

    async def probe() -> Seen:
        referral = world.referral(referral_id)
        now = f"{referral.get('status')}/{referral.get('substatus')}"
        notes = (referral.get("details") or {}).get("notes")
        return Seen(
            now == "Active/Accepted" and notes == rewritten,
            f"Partner Center referral is {now}, notes {notes!r}",
        )

    return await world.step(
        console,
        "The seller accepts it; the org's Flow rewrites the next step",
        f"the seller moved the opportunity to {ORG_ACTIVE} (Salesforce); the org's "
        f"Next_Step_From_Stage Flow set the next step to {rewritten!r}",
        f"the referral Active/Accepted in Partner Center, with the notes {rewritten!r}",
        probe,
    )


# ---- running it ----------------------------------------------------------------------------


@dataclass
class _Running:
    server: uvicorn.Server
    task: asyncio.Task[None]


async def _start(app: Any, listener: Listener, what: str) -> _Running:
    server = make_server(app, listener)
    task = asyncio.create_task(server.serve(sockets=[listener.sock]))
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise DemoError(f"the {what} did not start (see the messages above)")
        await asyncio.sleep(0.01)
    return _Running(server, task)


async def _stop(running: Sequence[_Running]) -> None:
    for item in running:
        item.server.should_exit = True
    for item in running:
        with contextlib.suppress(asyncio.CancelledError):
            await item.task


def _settings(
    pc: PartnerCenterSandbox, sf: SalesforceSandbox, directory: Path, service: Listener
) -> Settings:
    base = Settings.for_sandboxes(
        pc.info(), sf.info(), store_url=f"sqlite:///{directory / 'cosell.db'}"
    )
    return base.model_copy(
        update={
            "sync": base.sync.model_copy(update={"poll_interval_seconds": POLL_INTERVAL_SECONDS}),
            "server": base.server.model_copy(
                update={
                    "public_url": f"{service.base_url}{base.server.webhook_path}",
                    "trusted_ca_url": None,
                    "trusted_ca_file": directory / "sandbox-ca.cer",
                }
            ),
        }
    )


async def run_demo(
    console: Console,
    *,
    directory: Path,
    step_timeout: float,
    keep_running: bool,
    org_profile: Path | None = None,
    mapping: Path | None = None,
) -> bool:
    """Start everything, play the story, print the summary; True when every step synced.

    Args:
        console: where the story goes.
        directory: the store's and DBOS's directory.
        step_timeout: seconds each step may take to sync.
        keep_running: after the story, print the URLs and serve until Ctrl-C.
        org_profile: customise the Salesforce sandbox with this profile and play the
            customised-org story (`play_customised_story`) instead.
        mapping: the mapping file (None: the shipped one).
    """
    pc_listener, sf_listener, service_listener = listen(0), listen(0), listen(0)
    clock = OffsetClock()  # one clock for all: "three days later" moves everyone on
    partner_center = PartnerCenterSandbox(
        base_url=pc_listener.base_url, options=PartnerCenterOptions(), clock=clock
    )
    try:
        profile = load_profile(org_profile) if org_profile is not None else None
    except OrgProfileError as exc:
        raise DemoError(str(exc)) from exc
    salesforce = SalesforceSandbox(
        base_url=sf_listener.base_url,
        clock=clock,
        options=SalesforceOptions(org_profile=profile),
    )
    running: list[_Running] = []
    try:
        running.append(await _start(partner_center.app, pc_listener, "Partner Center sandbox"))
        running.append(await _start(salesforce.app, sf_listener, "Salesforce sandbox"))
        # Salesforce's changes reach cosell over CDC (the sandbox's Pub/Sub API, gRPC).
        pubsub_port = await salesforce.pubsub.start(0)
        salesforce.pubsub_endpoint = f"127.0.0.1:{pubsub_port}"
        settings = _settings(partner_center, salesforce, directory, service_listener)
        if mapping is not None:
            settings = settings.model_copy(
                update={"sync": settings.sync.model_copy(update={"mapping_file": mapping})}
            )
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            ca = await http.get(partner_center.info()["ca_certificate_url"])
            ca.raise_for_status()
            (directory / "sandbox-ca.cer").write_bytes(ca.content)
            async with build_service(
                settings, clock=clock, grace_seconds=GRACE_SECONDS
            ) as service_app:
                service = await _start(service_app, service_listener, "cosell service")
                try:
                    await _register(settings)
                    console.print(
                        f"[dim]  Partner Center sandbox  {pc_listener.base_url}\n"
                        f"  Salesforce sandbox      {sf_listener.base_url} (change events over gRPC at "
                        f"{salesforce.pubsub_endpoint})\n"
                        f"  cosell                  {service_listener.base_url}[/]\n"
                    )
                    with Store.open(settings.store.url, clock=clock) as store:
                        world = World(partner_center, salesforce, store, http, step_timeout)
                        story = play_customised_story if profile is not None else play_story
                        synced = await story(world, console)
                        _summary(console, world.results, synced)
                    if keep_running:
                        _print_urls(console, partner_center, salesforce, service_listener, settings)
                        await asyncio.wait(
                            [item.task for item in (*running, service)],
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                finally:
                    await _stop([service])  # before the service's clients and store close
        return synced
    finally:
        await _stop(running)
        await salesforce.pubsub.stop()
        salesforce.close()


async def _register(settings: Settings) -> None:
    lines: list[str] = []
    status = await run_register(settings, None, REFERRAL_EVENTS, overwrite=True, echo=lines.append)
    if status != 0:
        raise DemoError("the webhook registration failed: " + " ".join(lines))


def _summary(console: Console, results: Sequence[StepResult], synced: bool) -> None:
    table = Table(title="cosell demo", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("other side shows")
    table.add_column("latency", justify="right")
    for number, result in enumerate(results, start=1):
        latency = f"{result.latency:.2f} s" if result.synced else "[red]not synced[/]"
        table.add_row(str(number), result.title, escape(result.shows), latency)
    console.print()
    console.print(table)
    if synced:
        console.print(f"[green]Every step synced[/] ({len(results)} steps).")
    else:
        console.print("[red]Not every step synced[/]: the demo exits 1.")


def _print_urls(
    console: Console,
    pc: PartnerCenterSandbox,
    sf: SalesforceSandbox,
    service: Listener,
    settings: Settings,
) -> None:
    console.print(
        "\ncosell and both sandboxes keep running (Ctrl-C stops them):\n"
        f"  Partner Center sandbox  {pc.base_url}  (control API: /control)\n"
        f"  Salesforce sandbox      {sf.base_url}  (control API: /control)\n"
        f"  cosell health           {service.base_url}/healthz\n"
        f"  cosell readiness        {service.base_url}/readyz\n"
        f"  cosell metrics          {service.base_url}/metrics\n"
        f"  cosell console          {service.base_url}/console/\n"
        f"  store                   {settings.store.url}",
        soft_wrap=True,
    )
    users = settings.server.console_users_file
    if not users.exists():
        console.print(
            f"  The console needs a user: run `cosell console set-password` in {Path.cwd()} "
            f"(it writes {users}), then sign in.",
            soft_wrap=True,
        )


def play(
    *,
    keep_running: bool,
    step_timeout: float,
    org_profile: Path | None = None,
    mapping: Path | None = None,
) -> bool:
    """`cosell demo`: set up, play the story, clean up; True when every step synced."""
    configure_logging("console", level=logging.WARNING)
    console = Console(highlight=False)
    directory = Path(tempfile.mkdtemp(prefix="cosell-demo-"))
    console.print(
        "[bold]cosell demo[/]: Partner Center and Salesforce sandboxes and cosell, in one "
        "process, on loopback."
    )
    try:
        return asyncio.run(
            run_demo(
                console,
                directory=directory,
                step_timeout=step_timeout,
                keep_running=keep_running,
                org_profile=org_profile,
                mapping=mapping,
            )
        )
    except KeyboardInterrupt:
        return False
    except (DemoError, httpx.HTTPError) as error:
        typer.echo(f"Error: {error}", err=True)
        return False
    finally:
        if not keep_running:
            shutil.rmtree(directory, ignore_errors=True)


__all__: Sequence[str] = ("DemoError", "play", "play_customised_story", "play_story", "run_demo")
