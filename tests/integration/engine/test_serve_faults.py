"""The service under the six global failures: a side's problem pauses that side, never a deal.

`cosell serve` in process: the service's app (`create_app`: `/readyz`, `/metrics`) around a
worker `Engine` (DBOS on SQLite, queues listening) over both sandboxes in process (the sync
tests' `World`), on one `ManualClock`. A *poll tick* is what the schedule does every poll
interval: the clock moves `POLL` seconds and both poll workflows run (heal: probe the open
sides, notify the held keys; then poll). Nothing waits for real minutes: "two minutes" is four
ticks on the injected clock.

Each test: deals in sync; the fault starts (the sandboxes' fault injection, or the org/tenant
changing the credential or the field security); changes are made on the side that still
works; four ticks pass; then it asserts that no link was parked, `/readyz` is unready with
the reason, and the log has one warning for the state change and no traceback. The fault
clears, and within two ticks (no command run) every change made during it is on the other
side, counted: each value once, each new record created once.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from dbos import DBOS
from engine_kit import dry_run_factory, sandbox_world
from structlog.testing import capture_logs
from sync_world import World

from cosell.config import ServerSettings
from cosell.partnercenter.webhooks import SignatureVerifier
from cosell.server.app import create_app
from cosell.server.metrics import Metrics
from cosell.server.readiness import Check, Readiness
from cosell.store import Store, SyncStatus
from cosell.sync.engine import workflows as engine_module
from cosell.sync.engine.backoff import BackoffPolicy
from cosell.sync.engine.config import EngineOptions
from cosell.sync.engine.core import Engine
from cosell.sync.io.pollers import SERVICE_POLL_CURSOR
from cosell_sandbox.salesforce.orgprofile import OrgProfile, apply_profile, parse_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")

POLL = 30  # seconds: the service's poll interval (and so its probe interval)
FAULT_TICKS = 4  # two minutes of fault
HEAL_TICKS = 2  # every change is across within two poll intervals


@dataclass
class Served:
    world: World
    engine: Engine
    http: httpx.AsyncClient

    async def tick(self) -> None:
        """One poll interval of the service: the clock moves, both poll workflows run."""
        self.world.clock.advance(POLL)
        now = self.world.clock.now()
        await engine_module.poll_partner_center_workflow(now, None)
        await engine_module.poll_salesforce_workflow(now, None)
        await drained()

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        response = await self.http.get("/readyz")
        return response.status_code, response.json()

    async def metrics(self) -> str:
        return (await self.http.get("/metrics")).text


async def drained() -> None:
    """Wait until no reconcile or batch workflow is queued or running."""
    for _ in range(1000):
        waiting = await DBOS.list_workflows_async(
            status=["ENQUEUED", "PENDING"], load_input=False, load_output=False
        )
        if not [w for w in waiting if w.name in ("cosell.reconcile_key", "cosell.reconcile_batch")]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("reconciles still queued")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory, engine_key_dir: Path
) -> AsyncIterator[World]:
    async with sandbox_world(tmp_path_factory.mktemp("serve-faults"), engine_key_dir) as built:
        yield built


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(world: World) -> AsyncIterator[Served]:
    options = EngineOptions(
        queue_polling_seconds=0.02,
        poll_interval_seconds=3600,  # the real-time schedule never fires here: ticks are driven
        sweep_interval_seconds=86400,
        probe_seconds=POLL,
        backoff=BackoffPolicy(max_attempts=3, rng=random.Random(5)),
        preflight=True,
    )
    engine = Engine(
        None,
        store=world.store,
        context_factory=dry_run_factory(world),
        clock=world.clock,
        options=options,
    )
    ctx = world.ctx

    async def partner_center_token() -> str:
        await ctx.partner_center.tokens.token()
        return "Referrals API token obtained"

    async def salesforce_token() -> str:
        token = await ctx.salesforce.session.token()
        return f"token for {token.instance_url}"

    async def sync_health() -> str:
        return await asyncio.to_thread(engine.check_health)

    # As `cosell serve` wires them (`commands.serve.readiness_checks`), token checks uncached.
    readiness = Readiness(
        [
            Check("partner_center_token", partner_center_token, ttl_seconds=0.0),
            Check("salesforce_token", salesforce_token, ttl_seconds=0.0),
            Check("sync", sync_health, ttl_seconds=0.0),
        ],
        clock=world.clock,
    )
    certificates = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(404)))
    app = create_app(
        settings=ServerSettings(),
        verifier=SignatureVerifier(certificates, clock=world.clock),
        store=world.store,
        engine=engine,
        readiness=readiness,
        metrics=Metrics(world.store),
    )
    await engine.start(background=True)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cosell.test")
    try:
        yield Served(world, engine, http)
    finally:
        await http.aclose()
        await certificates.aclose()
        await engine.stop()


@dataclass
class Deals:
    """Deals in sync before a fault: opportunity id -> referral id."""

    pairs: dict[str, str]


async def deals_in_sync(served: Served, count: int = 3) -> Deals:
    world = served.world
    pairs = {}
    for _ in range(count):
        opportunity, referral = await world.shared_pair()
        pairs[opportunity] = referral
    await served.tick()
    for opportunity in pairs:
        link = world.store.link_for_record("Opportunity", opportunity)
        assert link is not None
        assert link.sync_status == SyncStatus.SYNCED
    return Deals(pairs)


def no_link_parked(world: World) -> None:
    parked = [
        (link.id, link.last_error)
        for link in world.store.links(limit=1000)
        if link.sync_status == SyncStatus.ERROR
    ]
    assert parked == [], parked


def warnings_and_tracebacks(
    events: list[dict[str, Any]], records: list[logging.LogRecord]
) -> tuple[list[str], list[str]]:
    """The warnings (each a state change: of the circuit, or of a side's sign-in), the tracebacks."""
    changes = [e["event"] for e in events if e["log_level"] in ("warning", "error", "critical")]
    tracebacks = [str(e.get("event")) for e in events if e.get("exc_info")]
    tracebacks += [r.getMessage() for r in records if r.exc_info or r.levelno >= logging.ERROR]
    return changes, tracebacks


async def run_fault(
    served: Served,
    caplog: pytest.LogCaptureFixture,
    *,
    start: Callable[[], Awaitable[None]],
    clear: Callable[[], Awaitable[None]],
    reason: str,
    side: str,
    opened_event: str = "sync.circuit_opened",
) -> None:
    """The common story: fault, changes on the working side, two minutes, checks, heal."""
    world = served.world
    deals = await deals_in_sync(served)
    links_before = len(world.store.links(limit=1000))
    edited = list(deals.pairs.items())
    caplog.set_level(logging.INFO)
    with capture_logs() as events:
        await start()
        # Changes during the fault, made on the side that still works (and the sandboxes'
        # control APIs, which no fault touches): an edit of every deal, and one new deal.
        values = {}
        for n, (opportunity, referral) in enumerate(edited):
            amount = 50_000 + 1000 * n + random.Random(side).randint(1, 99)
            values[opportunity] = amount
            if side == "salesforce":  # Salesforce is the failing side: edit in Partner Center
                await world.microsoft.edit(
                    referral, [{"op": "replace", "path": "/details/dealValue", "value": amount}]
                )
            else:
                await world.seller.edit("Opportunity", opportunity, {"Amount": amount})
        if side == "salesforce":
            new = await world.microsoft.send_co_sell(name=f"During the {side} fault")
            new_referral, new_opportunity = str(new["id"]), None
        else:
            account = await world.seller.create_account(name=f"During {side} fault")
            new_opportunity = await world.seller.create_opportunity(
                account, Name="New during fault"
            )
            new_referral = None
        for _ in range(FAULT_TICKS):
            await served.tick()
            no_link_parked(world)

        status, body = await served.readyz()
        assert status == 503, body
        assert reason in body["checks"]["sync"]["detail"], body
        assert engine_circuit_open(served, side)
        counts = world.store.deal_counts()
        assert counts.total == len(world.store.links(limit=1000))
        assert counts.pending >= len(edited), counts  # the changes wait as Pending
        assert counts.error == 0
        metrics = await served.metrics()
        for name, count in counts.as_dict().items():
            assert f'cosell_links{{status="{name}"}} {float(count)}' in metrics, metrics
        assert f'cosell_circuit_open{{side="{side}"}} 1.0' in metrics

        await clear()
        for _ in range(HEAL_TICKS):
            await served.tick()
        no_link_parked(world)

    # Every change made during the fault is across, once.
    for opportunity, referral in edited:
        pc = await world.microsoft.referral(referral)
        sf = await world.seller.opportunity(opportunity)
        assert pc["details"]["dealValue"] == values[opportunity], (opportunity, pc["details"])
        assert sf["Amount"] == values[opportunity], sf
    if new_referral is not None:
        made = await world.opportunities_for(new_referral)
        assert len(made) == 1, made
    if new_opportunity is not None:
        referrals = [
            r
            for r in await world.microsoft.referrals()
            if r.get("externalReferenceId") == new_opportunity
        ]
        assert len(referrals) == 1, referrals
    assert len(world.store.links(limit=1000)) == links_before + 1
    status, body = await served.readyz()
    assert status == 200, body
    assert world.store.held_keys() == []
    assert world.store.deal_counts().pending == 0

    changes, tracebacks = warnings_and_tracebacks(events, caplog.records)
    sign_in = [c for c in changes if c.endswith(".sign_in_refused")]
    assert len(sign_in) <= 1, changes  # the side's own refusal, said once when it starts
    assert [c for c in changes if c not in sign_in] == [opened_event, "sync.circuit_closed"]
    assert tracebacks == []


def engine_circuit_open(served: Served, side: str) -> bool:
    circuit = served.world.store.circuits().get(side)
    return circuit is not None and circuit.is_open


async def set_faults(world: World, side: str, **faults: Any) -> None:
    if side == "partner_center":
        await world.microsoft.control("PUT", "/faults", faults)
    else:
        response = await world.sf_http.put("/control/faults", json=faults)
        assert response.status_code < 300, response.text


async def test_partner_center_down_for_two_minutes(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    world = served.world
    await run_fault(
        served,
        caplog,
        start=lambda: set_faults(world, "partner_center", error_503_fraction=1.0),
        clear=lambda: set_faults(world, "partner_center", error_503_fraction=0.0),
        reason="Partner Center is unreachable",
        side="partner_center",
    )


async def test_partner_center_throttling_every_call_for_two_minutes(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    world = served.world
    await run_fault(
        served,
        caplog,
        start=lambda: set_faults(world, "partner_center", error_429_fraction=1.0),
        clear=lambda: set_faults(world, "partner_center", error_429_fraction=0.0),
        reason="Partner Center is throttling cosell",
        side="partner_center",
        opened_event="sync.throttled",
    )


async def test_salesforce_down_for_two_minutes(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    world = served.world
    await run_fault(
        served,
        caplog,
        start=lambda: set_faults(world, "salesforce", error_503_fraction=1.0),
        clear=lambda: set_faults(world, "salesforce", error_503_fraction=0.0),
        reason="Salesforce is unreachable",
        side="salesforce",
    )


async def test_a_wrong_partner_center_client_secret(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    world = served.world
    identity = world.pc_sandbox.identity
    right = identity.client_secret

    async def start() -> None:
        # The app's secret is rotated in Entra: the one cosell holds is now wrong.
        identity.client_secret = "rotated-" + right
        await world.microsoft.control("POST", "/identity/revoke-access-tokens")

    async def clear() -> None:
        identity.client_secret = right  # the admin puts back the secret cosell has

    await run_fault(
        served,
        caplog,
        start=start,
        clear=clear,
        reason="Partner Center refuses cosell's credentials",
        side="partner_center",
    )


async def test_a_refused_salesforce_login(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    world = served.world
    identity = world.sf_sandbox.identity
    right = identity._credentials

    async def start() -> None:
        # The connected app's consumer secret is changed in the org: cosell's login is refused.
        identity._credentials = replace(right, consumer_secret="changed-in-the-org")
        response = await world.sf_http.post("/control/sessions/expire")
        assert response.status_code < 300

    async def clear() -> None:
        identity._credentials = right

    await run_fault(
        served,
        caplog,
        start=start,
        clear=clear,
        reason="Salesforce refused cosell's sign-in",
        side="salesforce",
    )


async def test_a_mapping_naming_a_field_the_org_hides(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    world = served.world
    sandbox = world.sf_sandbox

    def field_security(profile: OrgProfile | None) -> None:
        # What an admin's change of field-level security does: the schema cosell's user sees
        # changes, the records stay (the sandbox's `set_profile` without its reset).
        schema = copy.deepcopy(sandbox._base_schema)
        applied = apply_profile(schema, profile or OrgProfile())
        sandbox.schema = sandbox.store.schema = sandbox.api.schema = schema
        sandbox.store.profile = applied
        sandbox.api.schema_changed_at = world.clock.now()

    async def start() -> None:
        field_security(
            parse_profile({"field_security": {"hidden": {"Opportunity": ["Description"]}}})
        )

    async def clear() -> None:
        field_security(None)

    await run_fault(
        served,
        caplog,
        start=start,
        clear=clear,
        reason="the mapping does not fit the Salesforce org",
        side="salesforce",
    )


async def _cosell(world: World, tmp_path: Path, *args: str) -> str:
    """Run a cosell command on the service's store, as an admin in a shell would."""
    return await asyncio.to_thread(_run_cli, world, tmp_path, *args)


def _run_cli(world: World, tmp_path: Path, *args: str) -> str:
    from unittest import mock

    from typer.testing import CliRunner

    from cosell.cli import app
    from cosell.commands import retry

    def seen(store: Store, settings: object, now: datetime) -> datetime | None:
        # The served service polls on the world's clock, not the wall clock this command
        # reads: it counts as running when it has polled at all.
        del settings, now
        return next(
            (c.updated_at for c in store.summary().cursors if c.name == SERVICE_POLL_CURSOR), None
        )

    config = tmp_path / "cosell.toml"
    config.write_text(f'[store]\nurl = "{world.store.url.render_as_string()}"\n')
    with mock.patch.object(retry, "service_seen", seen):
        result = CliRunner().invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.output


async def test_pause_and_resume_all_sync_and_one_deal(
    served: Served, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    world = served.world
    deals = await deals_in_sync(served, count=2)
    (held_opp, held_ref), (free_opp, free_ref) = deals.pairs.items()

    # All sync paused by hand: nothing is written, changes wait as Pending, /readyz says who.
    out = await _cosell(world, tmp_path, "pause", "--by", "ada", "--reason", "org migration")
    assert "all sync: paused by ada" in out
    await world.seller.edit("Opportunity", free_opp, {"Amount": 61000})
    writes = await world.calls()
    await served.tick()
    assert (await world.calls()).partner_center_writes == writes.partner_center_writes
    status, body = await served.readyz()
    assert status == 503
    assert "all sync is paused by ada (org migration)" in body["checks"]["sync"]["detail"]
    counts = world.store.deal_counts()
    assert counts.pending == 1
    assert counts.total == len(world.store.links(limit=1000))
    assert "cosell_sync_paused 1.0" in await served.metrics()

    # One deal paused, all sync resumed: the other deal syncs, the paused one waits.
    assert "all sync: resumed by ada" in await _cosell(world, tmp_path, "resume", "--by", "ada")
    await served.tick()  # the service polls: `cosell pause KEY` hands the deal to it
    out = await _cosell(
        world, tmp_path, "pause", f"salesforce:Opportunity:{held_opp}", "--by", "bob"
    )
    assert "The running `cosell serve`" in out
    await served.tick()  # within a poll, with no change of the deal, its record says Paused
    record = await world.seller.opportunity(held_opp)
    assert record["Partner_Center_Sync_Status__c"] == "Paused"
    assert record["Partner_Center_Sync_Error__c"].startswith("Sync paused by bob")
    await world.seller.edit("Opportunity", held_opp, {"Amount": 62000})
    await served.tick()
    assert (await world.microsoft.referral(free_ref))["details"]["dealValue"] == 61000
    assert (await world.microsoft.referral(held_ref))["details"]["dealValue"] != 62000
    assert world.store.deal_counts().paused == 1
    status, body = await served.readyz()
    assert status == 200  # one deal paused is not the service's problem, but it is said
    assert "1 deal(s) paused by hand" in body["checks"]["sync"]["detail"]
    report = await _cosell(world, tmp_path, "status", "--json")
    assert '"Paused": 1' in report

    out = await _cosell(world, tmp_path, "resume", f"referral:{held_ref}", "--by", "bob")
    assert "The running `cosell serve`" in out
    await served.tick()
    assert (await world.microsoft.referral(held_ref))["details"]["dealValue"] == 62000
    record = await world.seller.opportunity(held_opp)
    assert (record["Partner_Center_Sync_Status__c"], record["Partner_Center_Sync_Error__c"]) == (
        "Synced",
        None,
    )
    link = world.store.link_for_record("Opportunity", held_opp)
    assert link is not None
    messages = [e.message for e in world.store.audit(link.id)]
    assert "sync of this deal paused by bob" in messages
    assert "sync of this deal resumed by bob" in messages
    assert [e.message for e in world.store.audit(None)][:2] == [
        "all sync resumed by ada",
        "all sync paused by ada: org migration",
    ]
    assert world.store.deal_counts().pending == 0


async def test_a_failed_preflight_pauses_the_side_parks_nothing_and_a_probe_resumes_it(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    # What `cosell serve` does at start (`Engine.start` runs the preflight): here with a
    # mapping naming a field the org's user cannot see, fixed later in the org.
    world = served.world
    deals = await deals_in_sync(served, count=2)
    sandbox = world.sf_sandbox

    def field_security(hidden: list[str]) -> None:
        schema = copy.deepcopy(sandbox._base_schema)
        profile = parse_profile({"field_security": {"hidden": {"Opportunity": hidden}}})
        sandbox.store.profile = apply_profile(schema, profile if hidden else OrgProfile())
        sandbox.schema = sandbox.store.schema = sandbox.api.schema = schema

    field_security(["Description"])
    try:
        with capture_logs() as events:
            failures = await served.engine.run_preflight()
        assert [(f.side, f.kind) for f in failures] == [("salesforce", "global")]
        assert "Opportunity has no field 'Description'" in failures[0].cause
        assert [e["event"] for e in events if e["log_level"] == "warning"] == [
            "sync.circuit_opened"
        ]
        status, body = await served.readyz()
        assert status == 503
        assert "the mapping does not fit the Salesforce org" in body["checks"]["sync"]["detail"]
        opportunity, referral = next(iter(deals.pairs.items()))
        await world.microsoft.edit(
            referral, [{"op": "replace", "path": "/details/dealValue", "value": 77000}]
        )
        await served.tick()
        no_link_parked(world)
        assert world.store.deal_counts().pending == 1
    finally:
        field_security([])
    for _ in range(HEAL_TICKS):
        await served.tick()
    assert (await world.seller.opportunity(opportunity))["Amount"] == 77000
    assert (await served.readyz())[0] == 200
    assert world.store.deal_counts().pending == 0


async def test_a_deal_whose_record_stays_locked_is_retried_not_parked_and_pauses_nothing(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    # Transient trouble of one deal on a healthy side (every write answered UNABLE_TO_LOCK_ROW,
    # reads fine): retried with backoff, then held until the next poll tick, never parked, and
    # the side is not paused (a probe after the last retry finds it answering).
    world = served.world
    deals = await deals_in_sync(served, count=1)
    [(opportunity, referral)] = deals.pairs.items()
    with capture_logs() as events:
        await set_faults(world, "salesforce", lock_row_fraction=1.0)
        try:
            await world.microsoft.edit(
                referral, [{"op": "replace", "path": "/details/dealValue", "value": 88000}]
            )
            for _ in range(FAULT_TICKS):
                await served.tick()
                no_link_parked(world)
                assert not engine_circuit_open(served, "salesforce")
            assert (await served.readyz())[0] == 200
            assert world.store.deal_counts().pending == 1  # the change waits, counted
        finally:
            await set_faults(world, "salesforce", lock_row_fraction=0.0)
        for _ in range(HEAL_TICKS):
            await served.tick()
    assert (await world.seller.opportunity(opportunity))["Amount"] == 88000
    assert world.store.deal_counts().pending == 0
    changes, tracebacks = warnings_and_tracebacks(events, caplog.records)
    assert changes == []
    assert tracebacks == []
