"""A cosell engine worker process for the process-level engine tests (run as a script).

    python engine_worker.py '<json config>'

The config names the store, the sandboxes served on loopback (`cosell sandbox up --json`),
this worker's id, the keys to notify and whether to run a full pass. The worker starts an
`Engine` (background: it dequeues reconciles and batches), prints `@@ ready`, waits for `go` on
stdin, notifies its keys (each several times) and runs its pass, prints `notified`, waits for
`drain`, waits until no reconcile or batch is queued or running anywhere, prints a JSON result
line and exits.

Every reconcile is recorded, as it starts and ends, as JSON lines in `record_file`
(worker, kind, keys, start, end, on the machine's wall clock), so the test can check that no
key was reconciled by two workers at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from dbos import DBOS

from cosell.clock import SystemClock
from cosell.mapping import load_mapping
from cosell.partnercenter.auth import (
    AppCredentials,
    InMemoryRefreshTokenStore,
    RefreshTokenProvider,
    RoutingHttpClient,
)
from cosell.partnercenter.client import ReferralsClient
from cosell.salesforce.auth import ClientCredentialsFlow
from cosell.salesforce.client import SalesforceClient
from cosell.store import Store
from cosell.store.types import Key
from cosell.sync.engine import workflows as engine_module
from cosell.sync.engine.config import EngineOptions
from cosell.sync.engine.core import Engine
from cosell.sync.io.context import SyncContext
from cosell.sync.plan.outcome import Outcome
from cosell.sync.run import batch as reconcile


class RecordingReconciler:
    """W1's reconcile, with each run's keys, worker and times appended to a file."""

    def __init__(self, worker: str, path: Path) -> None:
        self._worker = worker
        self._path = path

    def _record(self, kind: str, keys: Sequence[str], start: float) -> None:
        line = json.dumps(
            {
                "worker": self._worker,
                "kind": kind,
                "keys": list(keys),
                "start": start,
                "end": time.time(),
            }
        )
        with self._path.open("a") as out:
            out.write(line + "\n")

    async def reconcile_key(self, ctx: SyncContext, key: Key) -> Outcome:
        start = time.time()
        try:
            return await reconcile.reconcile_key(ctx, key)
        finally:
            self._record("key", [key], start)

    async def reconcile_batch(self, ctx: SyncContext, keys: Sequence[Key]) -> list[Outcome]:
        start = time.time()
        try:
            return await reconcile.reconcile_batch(ctx, keys)
        finally:
            self._record("batch", keys, start)


def loopback_factory(config: dict[str, Any], store: Store, clock: SystemClock) -> Any:
    pc, sf = config["partner_center"], config["salesforce"]
    mapping = load_mapping()

    @asynccontextmanager
    async def factory(dry_run: bool) -> AsyncIterator[SyncContext]:
        async with (
            httpx.AsyncClient(timeout=30) as pc_http,
            httpx.AsyncClient(timeout=30) as sf_http,
        ):
            with httpx.Client(timeout=30) as entra:
                credentials = AppCredentials(
                    tenant_id=pc["tenant_id"],
                    client_id=pc["client_id"],
                    client_secret=pc["client_secret"],
                    http_client=RoutingHttpClient(pc["base_url"], entra),
                )
                tokens = RefreshTokenProvider(
                    credentials, InMemoryRefreshTokenStore(pc["refresh_token"]), clock=clock
                )
                referrals = ReferralsClient(
                    pc_http,
                    tokens,
                    base_url=pc["referrals_api"].removesuffix("/referrals"),
                    clock=clock,
                )
                flow = ClientCredentialsFlow(
                    sf["consumer_key"], sf["consumer_secret"], sf["token_url"], clock=clock
                )
                ctx = SyncContext(
                    partner_center=referrals,
                    salesforce=SalesforceClient(sf_http, flow, clock=clock),
                    store=store,
                    mapping=mapping,
                    clock=clock,
                )
                yield replace(ctx, dry_run=dry_run)

    return factory


async def listening(queue: str) -> None:
    """Wait until DBOS's worker thread for `queue` runs (it looks for new queues each second)."""
    name = f"queue-worker-{queue}"
    for _ in range(100):
        if any(thread.name == name for thread in threading.enumerate()):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"DBOS never started listening to {queue}")


async def drained() -> None:
    queues = [engine_module.RECONCILE_QUEUE, engine_module.BATCH_QUEUE]
    quiet = 0
    while quiet < 3:  # three quiet looks in a row: nothing was about to be enqueued either
        busy = await DBOS.list_workflows_async(
            status=["ENQUEUED", "PENDING"], queue_name=queues, load_input=False, load_output=False
        )
        quiet = 0 if busy else quiet + 1
        await asyncio.sleep(0.1)


PROTOCOL = "@@ "  # marks the worker's protocol lines among the logs on stdout


def say(line: str) -> None:
    print(PROTOCOL + line, flush=True)


async def read_line() -> str:
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


async def main(config: dict[str, Any]) -> None:
    clock = SystemClock()
    store = Store.open(config["store_url"], clock=clock)
    options = EngineOptions(
        system_database_url=config.get("system_database_url"),
        executor_id=config["worker"],
        queue_polling_seconds=0.05,
        poll_interval_seconds=3600,  # the test notifies; the pollers stay out of the way
        sweep_interval_seconds=86400,
    )
    engine = Engine(
        None,
        store=store,
        context_factory=loopback_factory(config, store, clock),
        clock=clock,
        options=options,
        reconciler=RecordingReconciler(config["worker"], Path(config["record_file"])),
    )
    await engine.start(background=True)
    await listening(engine_module.RECONCILE_QUEUE)
    say("ready")
    if config.get("wait_for_go", True):
        assert await read_line() == "go"
    for _ in range(config.get("repeat", 1)):
        for key in config.get("notify", []):
            await engine.notify(key)
    summary = await engine.run_pass(full=True) if config.get("full") else None
    say("notified")
    if config.get("wait_for_go", True):
        assert await read_line() == "drain"
    await drained()
    say(json.dumps({"pass_errors": list(summary.errors) if summary else []}))
    await engine.stop()
    store.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main(json.loads(sys.argv[1])))
