"""Scale-out: the backfill and the latency run with 1, 2 and 4 worker processes on PostgreSQL.

**Backfill.** For each worker count, this process serves both sandboxes (API latency injected
on every call), seeds `--size` incoming co-sell referrals straight into Partner Center's state,
and creates a fresh PostgreSQL database (dropped after). It starts N worker processes, each an
engine as `cosell serve` runs it (`Engine.start(background=True)`: it drains the DBOS queues;
its own executor id; pollers and the periodic sweep scheduled once a day, so they stay out of
the measurement), then one short-lived process enqueues the sweep workflow, exactly what the
periodic sweep does: the worker that dequeues it lists every referral page and enqueues batch
workflows of 200 keys on the shared `cosell-batch` queue, which all N workers drain (each runs
`worker_batches` at once). The clock runs from that enqueue until the store holds every link
Synced. The figures: wall time, referrals per second and the speed-up over one worker, API calls
per referral (sandbox counters), and the largest worker's peak RSS.

**Latency.** For each worker count, `bench/latency.py --workers N --store URL` runs as a
subprocess (it makes its own scratch database on the server); its webhook and poller rows are
reported with the worker count.

    .venv/bin/python bench/scale_out.py [--workers 1,2,4] [--size 1000] [--latency-ms 50]
        [--latency-changes 50] [--store postgresql://...] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import backfill
import benchkit

DEFAULT_STORE: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_WORKERS: Final = "1,2,4"
DEFAULT_SIZE: Final = 1000
DEFAULT_LATENCY_CHANGES: Final = 50
ONCE_A_DAY: Final = 86_400  # pollers and the periodic sweep: never during a run
READY: Final = "ready"
WAIT_TIMEOUT: Final = 1800.0  # seconds a backfill may take before the run gives up
START_TIMEOUT: Final = 120.0  # seconds a worker may take to start (imports, DBOS)
LOOK_SECONDS: Final = 0.25  # how often the store is looked at while the workers drain
SCRIPT: Final = Path(__file__).resolve()
LATENCY_SCRIPT: Final = SCRIPT.with_name("latency.py")

COLUMNS: Final = [
    "run",
    "workers",
    "referrals",
    "wall s",
    "referrals/s",
    "speed-up",
    "calls/referral",
    "peak RSS MiB",
    "p50 s",
    "p95 s",
    "changes/s",
]


class ScaleOutError(RuntimeError):
    """A run could not be made (no PostgreSQL, a worker that died); the message says why."""


# -- PostgreSQL ---------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server `server`, dropped on exit.

    Yields:
        Its URL (`postgresql+psycopg://...`, password kept).

    Raises:
        ScaleOutError: the server cannot be reached or refuses to create a database.
    """
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    admin_url = make_url(server).set(drivername="postgresql+psycopg")
    name = f"cosell_bench_{secrets.token_hex(6)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.SQLAlchemyError as error:
        admin.dispose()
        raise ScaleOutError(
            f"cannot create a database on {admin_url.render_as_string()}: {error}; "
            "start PostgreSQL or pass --store postgresql://user@host:5432/postgres"
        ) from error
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


# -- worker processes ---------------------------------------------------------------------------


@dataclass
class Worker:
    """A running worker process (child mode `--child-worker`)."""

    number: int
    process: asyncio.subprocess.Process

    @classmethod
    async def start(cls, number: int, settings: Path) -> Worker:
        """Start worker `number` and wait until its engine is running.

        Raises:
            ScaleOutError: it exited or did not say it was ready within `START_TIMEOUT`.
        """
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--child-worker",
            str(settings),
            "--worker-number",
            str(number),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        worker = cls(number, process)
        assert process.stdout is not None
        line = b""
        try:
            async with asyncio.timeout(START_TIMEOUT):
                # The engine's start logs first (the preflight signs in to both sides).
                while line.decode().strip() != READY:
                    line = await process.stdout.readline()
                    if not line:
                        break
        except TimeoutError:
            pass
        if line.decode().strip() != READY:
            await worker.kill()
            raise ScaleOutError(f"worker {number} did not start (it said {line!r})")
        return worker

    async def stop(self) -> dict[str, Any]:
        """Ask the worker to stop (its stdin closes) and return what it reported."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        async with asyncio.timeout(START_TIMEOUT):
            out, _ = await self.process.communicate()
        lines = [line for line in out.decode().splitlines() if line.startswith("{")]
        if self.process.returncode != 0 or not lines:
            raise ScaleOutError(f"worker {self.number} exited {self.process.returncode}")
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    async def kill(self) -> None:
        """End the worker at once (cleanup after a failure)."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def _engine(settings: Any, *, executor_id: str) -> tuple[Any, Any]:
    """An engine as a `cosell serve` worker builds it, and its store (both unopened)."""
    from cosell.clock import SystemClock
    from cosell.store import Store
    from cosell.sync.engine.config import EngineOptions
    from cosell.sync.engine.core import Engine, settings_context_factory

    clock = SystemClock()
    store = Store.open(settings.store.url, clock=clock)
    options = replace(
        EngineOptions.from_settings(settings),
        executor_id=executor_id,
        poll_interval_seconds=ONCE_A_DAY,
        sweep_interval_seconds=ONCE_A_DAY,
    )
    engine = Engine(
        settings,
        store=store,
        context_factory=settings_context_factory(settings, store=store, clock=clock),
        clock=clock,
        options=options,
    )
    return engine, store


async def child_worker(settings_path: Path, number: int) -> dict[str, Any]:
    """Child mode: a worker that drains the queues until its stdin closes; its peak RSS."""
    engine, store = _engine(backfill.load_settings(settings_path), executor_id=f"bench-{number}")
    try:
        await engine.start(background=True)
        print(READY, flush=True)
        await asyncio.to_thread(sys.stdin.read)
        await engine.stop()
    finally:
        store.close()
    return {"peak_rss_mib": benchkit.peak_rss_mib()}


async def child_kick(settings_path: Path) -> dict[str, Any]:
    """Child mode: enqueue one sweep workflow (what the periodic sweep does); when it did."""
    from datetime import UTC, datetime

    from dbos import DBOS

    from cosell.sync.engine.config import SCHEDULE_QUEUE
    from cosell.sync.engine.workflows import sweep_workflow

    engine, store = _engine(backfill.load_settings(settings_path), executor_id="bench-kick")
    try:
        await engine.start(background=False)  # enqueues only: it dequeues nothing
        queue = await DBOS.retrieve_queue_async(SCHEDULE_QUEUE)
        if queue is None:
            raise ScaleOutError(f"the queue {SCHEDULE_QUEUE} is not registered")
        await queue.enqueue_async(sweep_workflow, datetime.now(UTC), None)
        enqueued_at = time.time()
        await engine.stop()
    finally:
        store.close()
    return {"enqueued_at": enqueued_at}


# -- the backfill -------------------------------------------------------------------------------


async def wait_synced(store_url: str, size: int) -> tuple[float, int]:
    """Wait until the store holds `size` Synced links, or some in Error and none Pending.

    Returns:
        (when it was so, as `time.time()`, the links in Error).

    Raises:
        ScaleOutError: not done within `WAIT_TIMEOUT`.
    """
    from cosell.clock import SystemClock
    from cosell.store import Store

    store = Store.open(store_url, clock=SystemClock())
    try:
        async with asyncio.timeout(WAIT_TIMEOUT):
            while True:
                links = store.summary().links_by_status
                synced, errors = links.get("Synced", 0), links.get("Error", 0)
                if synced + errors >= size and not links.get("Pending", 0):
                    return time.time(), errors
                await asyncio.sleep(LOOK_SECONDS)
    except TimeoutError:
        raise ScaleOutError(f"the backfill did not finish within {WAIT_TIMEOUT:.0f} s") from None
    finally:
        store.close()


async def measure_backfill(
    workers: int, size: int, latency_seconds: float, server: str, directory: Path
) -> dict[str, Any]:
    """One backfill of `size` referrals by `workers` worker processes; its row."""
    async with backfill.served_sandboxes(latency_seconds) as sandboxes:
        backfill.seed_referrals(sandboxes, size)
        with scratch_database(server) as store_url:
            settings = backfill.write_settings(sandboxes, directory, store_url)
            running: list[Worker] = []
            try:
                for number in range(workers):
                    running.append(await Worker.start(number, settings))
                sandboxes.reset_calls()
                kicked = await backfill.run_child(SCRIPT, ["--child-kick", str(settings)])
                finished, errors = await wait_synced(store_url, size)
                reports = [await worker.stop() for worker in running]
            finally:
                for worker in running:
                    await worker.kill()
            pc_calls, sf_calls = sandboxes.calls()
            opportunities = sandboxes.opportunities()
    seconds = finished - kicked["enqueued_at"]
    return {
        "run": "backfill",
        "workers": workers,
        "referrals": size,
        "wall s": seconds,
        "referrals/s": size / seconds,
        "calls/referral": (pc_calls + sf_calls) / size,
        "peak RSS MiB": max(r["peak_rss_mib"] for r in reports),
        "PC calls": pc_calls,
        "SF calls": sf_calls,
        "errors": errors,
        "opportunities": opportunities,
    }


# -- the latency run ----------------------------------------------------------------------------


async def measure_latency(
    workers: int, changes: int, server: str, directory: Path
) -> list[dict[str, Any]]:
    """`bench/latency.py --workers N --store URL` at `changes` changes; its rows, tagged."""
    out = directory / f"latency-{workers}.json"
    arguments = ["--workers", str(workers), "--store", server, "--changes", str(changes)]
    await backfill.run_child(LATENCY_SCRIPT, [*arguments, "--json", str(out)], prints_result=False)
    document = json.loads(out.read_text(encoding="utf-8"))
    rows = []
    for measured in document["rows"]:
        rows.append(
            {
                "run": f"latency: {measured['path']}",
                "workers": workers,
                "p50 s": measured.get("p50_s"),
                "p95 s": measured.get("p95_s"),
                "changes/s": measured.get("changes_per_s"),
                "changes": measured.get("changes"),
            }
        )
    return rows


# -- the script ---------------------------------------------------------------------------------


def add_speed_up(rows: list[dict[str, Any]]) -> None:
    """Each backfill row's throughput over the one-worker row's (the first when none has 1)."""
    backfills = [row for row in rows if row["run"] == "backfill"]
    if not backfills:
        return
    base = next((row for row in backfills if row["workers"] == 1), backfills[0])
    for row in backfills:
        row["speed-up"] = row["referrals/s"] / base["referrals/s"]


def notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """What the rows say: throughput per worker count, and any incomplete backfill."""
    lines = []
    for row in rows:
        if row["run"] != "backfill":
            continue
        if row["errors"] or row["opportunities"] != row["referrals"]:
            lines.append(
                f"NOT COMPLETE with {row['workers']} worker(s): {row['errors']} link(s) in "
                f"Error, {row['opportunities']:,} opportunities for {row['referrals']:,} referrals"
            )
    speed = ", ".join(
        f"{row['workers']} worker(s): {row['referrals/s']:.1f}/s"
        for row in rows
        if row["run"] == "backfill"
    )
    if speed:
        lines.append(f"backfill throughput: {speed} ({os.cpu_count()} CPUs)")
    return lines


def build_parser() -> argparse.ArgumentParser:
    """The script's options."""
    parser = benchkit.parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--workers",
        type=benchkit.sizes,
        default=benchkit.sizes(DEFAULT_WORKERS),
        help=f"worker process counts, comma-separated (default {DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=DEFAULT_SIZE,
        help=f"referrals each backfill syncs (default {DEFAULT_SIZE})",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=backfill.DEFAULT_LATENCY_MS,
        help="latency injected on every API call of the backfill, ms (default "
        f"{backfill.DEFAULT_LATENCY_MS:.0f}; latency.py uses its own default)",
    )
    parser.add_argument(
        "--latency-changes",
        type=int,
        default=DEFAULT_LATENCY_CHANGES,
        help="changes per direction of each latency run; 0 skips the latency runs "
        f"(default {DEFAULT_LATENCY_CHANGES})",
    )
    parser.add_argument(
        "--store",
        default=os.environ.get("COSELL_TEST_POSTGRES_URL") or DEFAULT_STORE,
        help="PostgreSQL server (a fresh database is created per run and dropped after); "
        f"default COSELL_TEST_POSTGRES_URL or {DEFAULT_STORE}",
    )
    parser.add_argument("--child-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-number", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child-kick", type=Path, help=argparse.SUPPRESS)
    return parser


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every backfill, then every latency run; the rows.

    Raises:
        ScaleOutError: bench/latency.py is missing while latency runs are asked for, or a run
            could not be made.
    """
    if args.latency_changes > 0 and not LATENCY_SCRIPT.exists():
        raise ScaleOutError(
            f"{LATENCY_SCRIPT} is missing: it measures the latency part; pass "
            "--latency-changes 0 to measure the backfill only"
        )
    rows: list[dict[str, Any]] = []
    latency_seconds = args.latency_ms / 1000
    for workers in args.workers:
        with tempfile.TemporaryDirectory(prefix="cosell-scale-out-") as directory:
            rows.append(
                await measure_backfill(
                    workers, args.size, latency_seconds, args.store, Path(directory)
                )
            )
    add_speed_up(rows)
    if args.latency_changes > 0:
        for workers in args.workers:
            with tempfile.TemporaryDirectory(prefix="cosell-scale-out-") as directory:
                rows.extend(
                    await measure_latency(
                        workers, args.latency_changes, args.store, Path(directory)
                    )
                )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or one of its hidden child modes); the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.child_worker is not None:
        print(json.dumps(asyncio.run(child_worker(args.child_worker, args.worker_number))))
        return 0
    if args.child_kick is not None:
        print(json.dumps(asyncio.run(child_kick(args.child_kick))))
        return 0
    if args.size <= 0 or args.latency_ms < 0 or args.latency_changes < 0:
        parser.error("--size must be above 0; --latency-ms and --latency-changes at least 0")
    from cosell.server.logs import configure_logging

    configure_logging("console", level=40)
    try:
        rows = asyncio.run(run(args))
    except ScaleOutError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    report = benchkit.Report(
        title=f"Scale-out on PostgreSQL, backfill at {args.latency_ms:g} ms per API call",
        options={
            "workers": args.workers,
            "size": args.size,
            "latency_ms": args.latency_ms,
            "latency_changes": args.latency_changes,
        },
        columns=COLUMNS,
        rows=rows,
        notes=notes(rows),
    )
    report.print()
    report.write_json(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
