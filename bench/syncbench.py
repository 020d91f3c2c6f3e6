"""cosell syncing between both sandboxes on loopback: the harness of the sync benchmarks.

`bench/latency.py` and `bench/api_calls.py` measure the real service against the sandboxes, with
latency injected into every API call. This module sets that world up and tears it down:

- Both sandboxes run in this process (uvicorn servers on this asyncio loop, on free loopback
  ports, like `cosell demo`), so the benchmark reads each side's state directly (no API call is
  spent on looking) and counts the API calls each one serves with `ApiCounter`, an ASGI
  middleware that tells the pollers' periodic reads apart from the rest.
- cosell runs as `--workers` separate `cosell serve` processes (`cosell.toml` written from
  `Settings.for_sandboxes`, each worker with its own `COSELL_WORKER_ID`), as in production; they
  share the store: a SQLite file in the run's temporary directory for one worker, or, with
  `--store postgresql://...`, a fresh database created on that server for the run and dropped
  afterwards (the URL names the server; the database it names is only used to connect). The
  Partner Center webhook is registered for the first worker's endpoint; its callbacks go into
  the shared queue, so every worker takes a share of the reconciles.
- `setup_pairs` makes the synced pairs the changes are made on: the partner's seller shares
  opportunities with Microsoft (Sync with Partner Center ticked), cosell creates a referral for
  each, and the harness waits until every link is Synced. This runs before any latency is
  injected (`inject_latency`), so it stays quick.

People act as they would: the Microsoft-side or partner user's change in Partner Center goes
through the sandbox's store (it emits the webhook like any change), the seller's change in
Salesforce through the Salesforce control API (`?as=seller`, so it is not cosell's own edit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

import benchkit
import httpx
import sqlalchemy as sa
import uvicorn
from rich.console import Console
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp, Receive, Scope, Send

from cosell.clock import SystemClock
from cosell.commands.sandbox import settings_toml
from cosell.commands.webhooks import REFERRAL_EVENTS, run_register
from cosell.config import Settings
from cosell.server.logs import configure_logging
from cosell.store import Store, SyncStatus
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox
from cosell_sandbox.partnercenter.app import SandboxOptions as PartnerCenterOptions
from cosell_sandbox.salesforce.app import SalesforceSandbox
from cosell_sandbox.serving import Listener, listen, make_server

DEFAULT_POLL_INTERVAL: Final = 5  # seconds; see bench/README.md for the product's default
TABLE_WIDTH: Final = 120  # the tables' long case names stay on one line, even in a pipe
STOP_GRACE: Final = 2  # seconds a stopping worker lets running reconciles finish (all measured)
START_TIMEOUT: Final = 60.0  # seconds a server or worker may take to start (imports, DBOS)
SETUP_TIMEOUT: Final = 120.0  # seconds the shared opportunities may take to get their referral
LOOK_SECONDS: Final = 0.02  # how often a waiting benchmark looks at the other side
HTTP_TIMEOUT: Final = httpx.Timeout(30.0)
PC_API_PREFIX: Final = "/v1.0/"
SF_API_PREFIX: Final = "/services/data/"
# What tells the pollers' reads apart (cosell.sync.io.pollers): both read in stamp order.
PC_POLL_MARK: Final = "updatedDateTime asc"
SF_POLL_MARK: Final = "ORDER BY SystemModstamp ASC"


class BenchError(Exception):
    """The benchmark could not run (a bad option, a worker that did not start, no sync)."""


@dataclass(frozen=True)
class HarnessOptions:
    """How the world is set up.

    Attributes:
        latency_ms: milliseconds injected into every API call of both sandboxes.
        poll_interval: the service's poll interval in seconds (`[sync] poll_interval_seconds`).
        workers: how many `cosell serve` processes share the store.
        store: a PostgreSQL server URL (a database is created on it for the run), or None for
            a SQLite file (one worker only).
        changes: how the service notices Salesforce changes: `poll` or `cdc` (the Salesforce
            sandbox then serves its Pub/Sub API and the settings say `changes = "cdc"`).
    """

    latency_ms: float
    poll_interval: int
    workers: int = 1
    store: str | None = None
    changes: str = "poll"

    def validate(self) -> None:
        """Check the options.

        Raises:
            BenchError: an option is out of range or the combination cannot work; the message
                says what to give instead.
        """
        if self.latency_ms < 0:
            raise BenchError("--latency-ms must be 0 or more")
        if self.workers < 1:
            raise BenchError("--workers must be at least 1")
        if self.store is None and self.workers > 1:
            raise BenchError(
                "--workers above 1 needs a shared store: give --store postgresql://user@host/db"
            )
        if self.store is not None and not self.store.startswith("postgresql"):
            raise BenchError(
                f"--store must be a postgresql:// URL (a database is created on that server for "
                f"the run), got {self.store!r}"
            )


@dataclass
class Calls:
    """API calls one sandbox served: reads (GET) and writes (the rest), the pollers' apart."""

    reads: int = 0
    writes: int = 0
    poll_reads: int = 0

    def minus(self, earlier: Calls) -> Calls:
        """The calls served since `earlier` was taken."""
        return Calls(
            self.reads - earlier.reads,
            self.writes - earlier.writes,
            self.poll_reads - earlier.poll_reads,
        )


class ApiCounter:
    """ASGI middleware counting a sandbox's API calls (its `/control/stats`, classified).

    Only the API itself is counted (`prefix`: the Referrals API or the Salesforce data API),
    not tokens, certificates or the control API. A GET whose query string holds `poll_mark` is
    a poller's periodic read (it happens on every tick, changed or not); it counts as a read
    and also as a poll read, so a benchmark can leave the ticks out of "per change".
    """

    def __init__(self, app: ASGIApp, prefix: str, poll_mark: str) -> None:
        self._app = app
        self._prefix = prefix
        self._poll_mark = poll_mark
        self.calls = Calls()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the call, then pass it on."""
        if scope["type"] == "http" and str(scope["path"]).startswith(self._prefix):
            if scope["method"] == "GET":
                self.calls.reads += 1
                query = " ".join(
                    " ".join(values)
                    for values in parse_qs(scope.get("query_string", b"").decode()).values()
                )
                if self._poll_mark in query:
                    self.calls.poll_reads += 1
            else:
                self.calls.writes += 1
        await self._app(scope, receive, send)

    def snapshot(self) -> Calls:
        """The counts so far (a copy)."""
        return Calls(self.calls.reads, self.calls.writes, self.calls.poll_reads)


@dataclass(frozen=True)
class Pair:
    """A synced opportunity and referral the benchmark changes."""

    opportunity_id: str
    referral_id: str


@dataclass
class _Server:
    server: uvicorn.Server
    task: asyncio.Task[None]


@dataclass
class World:
    """Both sandboxes, cosell's workers and its store, and an HTTP client to act with."""

    options: HarnessOptions
    partner_center: PartnerCenterSandbox
    salesforce: SalesforceSandbox
    pc_calls: ApiCounter
    sf_calls: ApiCounter
    settings: Settings
    store: Store
    http: httpx.AsyncClient
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    # ---- acting as people ------------------------------------------------------------------

    async def inject_latency(self, latency_ms: float) -> None:
        """Set both sandboxes' `latency_seconds` fault through their control APIs."""
        body = {"latency_seconds": latency_ms / 1000}
        for base in (self.partner_center.base_url, self.salesforce.base_url):
            response = await self.http.put(f"{base}/control/faults", json=body)
            if response.status_code != 200:
                raise BenchError(f"{base} refused the latency fault: {response.text}")

    def partner_changes_value(self, referral_id: str, value: int) -> None:
        """A partner user sets a referral's deal value in Partner Center (emits its webhook)."""
        patch = [{"op": "replace", "path": "/details/dealValue", "value": value}]
        self.partner_center.store.patch(referral_id, patch, if_match=None)

    async def delay_webhooks(self, seconds: float) -> None:
        """Set the Partner Center sandbox's webhook `delay_seconds` fault (control API)."""
        response = await self.http.put(
            f"{self.partner_center.base_url}/control/webhooks/faults",
            json={"delay_seconds": seconds},
        )
        if response.status_code != 200:
            raise BenchError(f"Partner Center refused the webhook delay: {response.text}")

    def notify_unchanged(self, referral_id: str) -> None:
        """Partner Center sends a `referral-updated` callback for a referral nothing changed."""
        self.partner_center.webhooks.emit("referral-updated", referral_id)

    async def seller_creates(self, sobject: str, fields: dict[str, Any]) -> str:
        """The partner's seller creates a Salesforce record; its id."""
        response = await self.http.post(
            f"{self.salesforce.base_url}/control/records/{sobject}",
            params={"as": "seller"},
            json=fields,
        )
        if response.status_code != 201:
            raise BenchError(f"Salesforce refused to create a {sobject}: {response.text}")
        return str(response.json()["id"])

    async def seller_updates(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        """The partner's seller edits a Salesforce record (not cosell's edit)."""
        response = await self.http.patch(
            f"{self.salesforce.base_url}/control/records/{sobject}/{record_id}",
            params={"as": "seller"},
            json=fields,
        )
        if response.status_code != 204:
            raise BenchError(f"Salesforce refused to update {sobject} {record_id}: {response.text}")

    # ---- looking at each side (no API call) ------------------------------------------------

    def opportunity_amount(self, opportunity_id: str) -> float | None:
        """The opportunity's Amount in Salesforce as it is now."""
        row = self.salesforce.store.row("Opportunity", opportunity_id)
        amount = None if row is None else row.get("Amount")
        return None if amount is None else float(amount)

    def referral_value(self, referral_id: str) -> float | None:
        """The referral's deal value in Partner Center as it is now."""
        value = self.partner_center.store.get(referral_id)["details"].get("dealValue")
        return None if value is None else float(value)

    def calls(self) -> dict[str, Calls]:
        """The API calls each sandbox has served so far."""
        return {"partner_center": self.pc_calls.snapshot(), "salesforce": self.sf_calls.snapshot()}

    def check_workers(self) -> None:
        """Raise when a worker has exited.

        Raises:
            BenchError: a worker exited; the message has its status.
        """
        for number, worker in enumerate(self.workers):
            if worker.poll() is not None:
                raise BenchError(
                    f"cosell worker {number} exited with status {worker.returncode}; its log is "
                    "in the run directory (--keep)"
                )


async def wait_until(world: World, done: Callable[[], bool], within: float, what: str) -> float:
    """Look every `LOOK_SECONDS` until `done()`; the seconds it took.

    Raises:
        BenchError: not done within `within` seconds (the message says what was awaited).
    """
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > within:
            raise BenchError(f"{what} did not happen within {within:g} s")
        world.check_workers()
        await asyncio.sleep(LOOK_SECONDS)
    return time.monotonic() - started


async def setup_pairs(world: World, count: int) -> list[Pair]:
    """`count` opportunities shared with Microsoft by the seller, each synced to a referral.

    Raises:
        BenchError: they were not all synced within `SETUP_TIMEOUT`.
    """
    opportunities = []
    for number in range(count):
        account = await world.seller_creates(
            "Account",
            {
                "Name": f"Bench Customer {number}",
                "BillingStreet": "1 Main St",
                "BillingCity": "Redmond",
                "BillingState": "WA",
                "BillingPostalCode": "98052",
                "BillingCountry": "US",
            },
        )
        opportunities.append(
            await world.seller_creates(
                "Opportunity",
                {
                    "Name": f"Bench deal {number}",
                    "AccountId": account,
                    "StageName": "Qualification",
                    "CloseDate": "2027-06-30",
                    "Amount": 10_000,
                    "CurrencyIsoCode": "USD",
                    "Sync_with_Partner_Center__c": True,
                },
            )
        )
    pairs: dict[str, Pair] = {}

    def all_synced() -> bool:
        for opportunity_id in opportunities:
            if opportunity_id in pairs:
                continue
            link = world.store.link_for_record("Opportunity", opportunity_id)
            if link and link.referral_id and link.sync_status == SyncStatus.SYNCED:
                pairs[opportunity_id] = Pair(opportunity_id, link.referral_id)
        return len(pairs) == len(opportunities)

    await wait_until(world, all_synced, SETUP_TIMEOUT, f"syncing {count} shared opportunities")
    return [pairs[opportunity_id] for opportunity_id in opportunities]


# ---- starting and stopping -----------------------------------------------------------------


@asynccontextmanager
async def running(options: HarnessOptions, directory: Path) -> AsyncIterator[World]:
    """Both sandboxes, `options.workers` cosell workers and their store, up; all stopped after.

    Args:
        options: the world's shape (checked here).
        directory: where the store, DBOS's database, the config and the workers' logs go.

    Raises:
        BenchError: an option is wrong, or something did not start.
    """
    options.validate()
    pc_listener, sf_listener = listen(0), listen(0)
    partner_center = PartnerCenterSandbox(
        base_url=pc_listener.base_url, options=PartnerCenterOptions(seed=7)
    )
    salesforce = SalesforceSandbox(base_url=sf_listener.base_url)
    pc_calls = ApiCounter(partner_center.app, PC_API_PREFIX, PC_POLL_MARK)
    sf_calls = ApiCounter(salesforce.app, SF_API_PREFIX, SF_POLL_MARK)
    servers: list[_Server] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(salesforce.close)
        stack.push_async_callback(_stop_servers, servers)
        servers.append(await _start_server(pc_calls, pc_listener, "Partner Center sandbox"))
        servers.append(await _start_server(sf_calls, sf_listener, "Salesforce sandbox"))
        if options.changes == "cdc":
            pubsub_port = await salesforce.pubsub.start(0)
            salesforce.pubsub_endpoint = f"127.0.0.1:{pubsub_port}"
            stack.push_async_callback(salesforce.pubsub.stop)
        store_url = (
            f"sqlite:///{directory / 'cosell.db'}"
            if options.store is None
            else stack.enter_context(_scratch_database(options.store))
        )
        # No keep-alive: a connection idle past the sandbox's keep-alive timeout may be closed just
        # as it is reused (httpx.ReadError); a connection per control call costs little here.
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                timeout=HTTP_TIMEOUT, limits=httpx.Limits(max_keepalive_connections=0)
            )
        )
        settings = await _settings(partner_center, salesforce, http, directory, store_url, options)
        config = directory / "cosell.toml"
        config.write_text(settings_toml(settings), encoding="utf-8")
        workers: list[subprocess.Popen[bytes]] = []
        stack.callback(_stop_workers, workers)
        # Stopping a worker mid-call makes a sandbox log the dropped request: expected then.
        stack.callback(logging.getLogger("uvicorn.error").setLevel, logging.CRITICAL)
        webhook_url = await _start_workers(workers, config, directory, options.workers)
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update={"public_url": webhook_url})}
        )
        await _register(settings)
        store = stack.enter_context(Store.open(store_url, clock=SystemClock()))
        yield World(
            options, partner_center, salesforce, pc_calls, sf_calls, settings, store, http, workers
        )


async def _start_server(app: ASGIApp, listener: Listener, what: str) -> _Server:
    server = make_server(app, listener)
    task = asyncio.create_task(server.serve(sockets=[listener.sock]))
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise BenchError(f"the {what} did not start")
        await asyncio.sleep(0.01)
    return _Server(server, task)


async def _stop_servers(servers: Sequence[_Server]) -> None:
    for item in servers:
        item.server.should_exit = True
    for item in servers:
        with contextlib.suppress(asyncio.CancelledError):
            await item.task


async def _settings(
    pc: PartnerCenterSandbox,
    sf: SalesforceSandbox,
    http: httpx.AsyncClient,
    directory: Path,
    store_url: str,
    options: HarnessOptions,
) -> Settings:
    ca = await http.get(pc.info()["ca_certificate_url"])
    ca.raise_for_status()
    (directory / "sandbox-ca.cer").write_bytes(ca.content)
    base = Settings.for_sandboxes(pc.info(), sf.info(), store_url=store_url)
    return base.model_copy(
        update={
            "sync": base.sync.model_copy(update={"poll_interval_seconds": options.poll_interval}),
            "server": base.server.model_copy(
                update={
                    "trusted_ca_url": None,
                    "trusted_ca_file": directory / "sandbox-ca.cer",
                    "log_format": "json",
                }
            ),
        }
    )


async def _start_workers(
    workers: list[subprocess.Popen[bytes]], config: Path, directory: Path, count: int
) -> str:
    """Start `count` `cosell serve` processes; the first one's webhook URL."""
    cosell = Path(sys.executable).with_name("cosell")
    command = [str(cosell)] if cosell.exists() else [sys.executable, "-m", "cosell.cli"]
    for number in range(count):
        log = (directory / f"worker-{number}.log").open("wb")
        env = {**os.environ, "COSELL_WORKER_ID": f"bench-{number}"}
        workers.append(
            subprocess.Popen(  # noqa: ASYNC220 - started once; its output is read below
                [
                    *command,
                    "serve",
                    "--config",
                    str(config),
                    "--port",
                    "0",
                    "--grace",
                    str(STOP_GRACE),
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                cwd=directory,
            )
        )
        log.close()
    urls = await asyncio.gather(
        *(_announced(worker, number) for number, worker in enumerate(workers))
    )
    return urls[0]


async def _announced(worker: subprocess.Popen[bytes], number: int) -> str:
    """The webhook URL a worker prints once it listens."""
    assert worker.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(worker.stdout.readline), START_TIMEOUT)
    if not line:
        raise BenchError(
            f"cosell worker {number} exited before it listened (status {worker.wait()}); see "
            f"worker-{number}.log in the run directory (--keep)"
        )
    return str(json.loads(line)["webhook_url"])


def _stop_workers(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()


async def _register(settings: Settings) -> None:
    lines: list[str] = []
    status = await run_register(settings, None, REFERRAL_EVENTS, overwrite=True, echo=lines.append)
    if status != 0:
        raise BenchError("the webhook registration failed: " + " ".join(lines))


@contextlib.contextmanager
def _scratch_database(server_url: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server of `server_url`, dropped at exit; its URL."""
    admin_url = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"cosell_bench_{secrets.token_hex(6)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as error:
        admin.dispose()
        raise BenchError(
            f"--store {server_url}: cannot create a database there ({error})"
        ) from None
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


async def settle(world: World) -> None:
    """Wait for the work a change set off to end: a poll tick, then `quiet`.

    One poll interval lets the pollers see the last writes (an echo of cosell's own write is
    found that way).
    """
    await asyncio.sleep(world.options.poll_interval + 0.5)
    await quiet(world)


async def quiet(world: World) -> None:
    """Wait until no API call but the pollers' has been made for a while.

    A while is half a second plus five API calls' latency: a reconcile's calls follow each
    other closer than that.
    """
    quiet_seconds = 0.5 + 5 * world.options.latency_ms / 1000
    last = _busy(world)
    still_since = time.monotonic()
    while time.monotonic() - still_since < quiet_seconds:
        world.check_workers()
        await asyncio.sleep(LOOK_SECONDS * 5)
        now = _busy(world)
        if now != last:
            last, still_since = now, time.monotonic()


async def after_tick(world: World) -> None:
    """Wait for both pollers' next reads, then `quiet`: a poll interval free of ticks follows."""
    before = world.calls()
    await wait_until(
        world,
        lambda: all(
            calls.poll_reads > before[side].poll_reads for side, calls in world.calls().items()
        ),
        2 * world.options.poll_interval + START_TIMEOUT,
        "a poll of both sides",
    )
    await quiet(world)


def _busy(world: World) -> tuple[int, ...]:
    return tuple(calls.reads + calls.writes - calls.poll_reads for calls in world.calls().values())


def load_average() -> list[float]:
    """The machine's load over the last 1, 5 and 15 minutes (figures from a busy one mislead)."""
    return [round(value, 2) for value in os.getloadavg()]


def add_world_options(parser: argparse.ArgumentParser) -> None:
    """The options every sync benchmark takes: latency, poll interval, keeping the run."""
    parser.add_argument(
        "--latency-ms",
        type=benchkit.non_negative,
        default=100.0,
        help="latency injected into every API call of both sandboxes, in ms (default 100)",
    )
    parser.add_argument(
        "--poll-interval",
        type=benchkit.positive,
        default=DEFAULT_POLL_INTERVAL,
        help=f"the service's poll interval in seconds, a divisor of 60 (default "
        f"{DEFAULT_POLL_INTERVAL})",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the run directory (store, config, worker logs)"
    )


def main(
    run: Callable[[Path], Coroutine[Any, Any, benchkit.Report]], args: argparse.Namespace, name: str
) -> int:
    """Run a sync benchmark in a temporary directory, print and write its report.

    Args:
        run: measures, given the run directory, and returns the report.
        args: the parsed options (`--keep`, `--json`).
        name: the benchmark's name, in the directory's.

    Returns:
        0 when it ran (targets are reported, not enforced), 1 when it could not (the reason is
        printed).
    """
    configure_logging("console", level=logging.WARNING)
    directory = Path(tempfile.mkdtemp(prefix=f"cosell-bench-{name}-"))
    try:
        report = asyncio.run(run(directory))
    except BenchError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"run directory: {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    report.print(Console(width=max(Console().width, TABLE_WIDTH)))
    report.write_json(args.json)
    return 0
