"""Backfill: `cosell sync --full` of N pre-existing incoming referrals into an empty org.

For each size, this process builds both sandboxes on loopback (API latency injected on every
call), seeds N incoming co-sell referrals straight into the Partner Center sandbox's state (not
through N HTTP calls), and runs the pass of `cosell sync --full` (`commands.sync.run_sync`) in
a child process, so the peak resident memory reported is the sync's own, per size. The figures:
wall time of the pass, API calls per referral (from the sandboxes' call counters, token calls
included), peak RSS, and what the pass did (opportunities created, errors).

Targets (issue 7): <= 0.05 API calls per referral, 10,000 referrals in < 60 s, memory flat in
the number of referrals.

    .venv/bin/python bench/backfill.py [--sizes 1000,3000] [--latency-ms 50] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from unittest import mock

import benchkit

DEFAULT_SIZES: Final = "1000,3000"  # under 2 minutes on 2 cores; 10,000 and 50,000 by --sizes
DEFAULT_LATENCY_MS: Final = 50.0
TARGET_CALLS_PER_REFERRAL: Final = 0.05
TARGET_SECONDS_FOR_10K: Final = 60.0
SCRIPT: Final = Path(__file__).resolve()
CHILD_TIMEOUT: Final = 3600.0  # seconds one pass may take before the run gives up on it

COLUMNS: Final = [
    "referrals",
    "wall s",
    "CPU s",
    "referrals/s",
    "PC calls",
    "SF calls",
    "calls/referral",
    "peak RSS MiB",
    "created",
    "errors",
]


@dataclass
class Sandboxes:
    """Both sandboxes, served on loopback by this process's event loop."""

    partner_center: Any
    salesforce: Any

    def calls(self) -> tuple[int, int]:
        """API calls each sandbox served so far: (Partner Center, Salesforce)."""
        return self.partner_center.stats.total(), sum(self.salesforce.stats.values())

    def calls_by_route(self) -> dict[str, int]:
        """Calls served by "side METHOD route", for the JSON (where the calls go)."""
        result: dict[str, int] = {}
        for item in self.partner_center.stats.to_json()["calls"]:
            name = f"PC {item['method']} {item['route']}"
            result[name] = result.get(name, 0) + item["count"]
        for (method, route, _), count in self.salesforce.stats.items():
            name = f"SF {method} {route}"
            result[name] = result.get(name, 0) + count
        return dict(sorted(result.items()))

    def reset_calls(self) -> None:
        """Zero both call counters."""
        self.partner_center.stats.reset()
        self.salesforce.stats.clear()

    def opportunities(self) -> int:
        """How many opportunities the Salesforce org holds."""
        rows = self.salesforce.store.rows("Opportunity", include_deleted=False)
        return sum(1 for _ in rows)

    def info(self) -> dict[str, Any]:
        """Both sandboxes' start-up JSON (URLs and credentials)."""
        return {"partner_center": self.partner_center.info(), "salesforce": self.salesforce.info()}


@contextlib.asynccontextmanager
async def served_sandboxes(latency_seconds: float) -> AsyncIterator[Sandboxes]:
    """Serve both sandboxes on free loopback ports with `latency_seconds` on every API call.

    Yields:
        The running sandboxes (empty: no referral, a fresh org).
    """
    from cosell.commands.story import _start, _stop
    from cosell_sandbox.partnercenter.app import PartnerCenterSandbox
    from cosell_sandbox.partnercenter.app import SandboxOptions as PartnerCenterOptions
    from cosell_sandbox.partnercenter.faults import ApiFaults as PartnerCenterFaults
    from cosell_sandbox.salesforce.app import ApiFaults as SalesforceFaults
    from cosell_sandbox.salesforce.app import SalesforceSandbox
    from cosell_sandbox.salesforce.app import SandboxOptions as SalesforceOptions
    from cosell_sandbox.serving import listen

    pc_listener, sf_listener = listen(0), listen(0)
    partner_center = PartnerCenterSandbox(
        base_url=pc_listener.base_url,
        options=PartnerCenterOptions(
            seed=7, faults=PartnerCenterFaults(latency_seconds=latency_seconds)
        ),
    )
    salesforce = SalesforceSandbox(
        base_url=sf_listener.base_url,
        options=SalesforceOptions(seed=7, faults=SalesforceFaults(latency_seconds=latency_seconds)),
    )
    running = []
    try:
        running.append(await _start(partner_center.app, pc_listener, "Partner Center sandbox"))
        running.append(await _start(salesforce.app, sf_listener, "Salesforce sandbox"))
        yield Sandboxes(partner_center, salesforce)
    finally:
        await _stop(running)
        salesforce.close()


def seed_referrals(sandboxes: Sandboxes, count: int) -> float:
    """Put `count` incoming co-sell referrals into Partner Center's state, without HTTP.

    Returns:
        The seconds it took.
    """
    started = time.perf_counter()
    store = sandboxes.partner_center.store
    # Each create first expires overdue referrals, a scan of every New one: quadratic in
    # `count`. Nothing seeded is due (they expire in 14 days), so the scan is left out.
    with mock.patch.object(store, "expire_due"):
        for _ in range(count):
            store.create_incoming("co-sell")
    return time.perf_counter() - started


async def run_child(
    script: Path, arguments: Sequence[str], *, prints_result: bool = True
) -> dict[str, Any]:
    """Run the Python script `script` with `arguments`; the JSON object it prints last.

    With `prints_result` False the child reports through a file of its own (`--json FILE`)
    and an empty dict is returned once it exited 0.

    Raises:
        RuntimeError: the child failed or ran over `CHILD_TIMEOUT`; the message holds its output.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        async with asyncio.timeout(CHILD_TIMEOUT):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(
            f"{script.name} {' '.join(arguments)} ran over {CHILD_TIMEOUT:.0f} s"
        ) from None
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(
            f"{script.name} {' '.join(arguments)} exited {process.returncode}:\n{text}\n"
            f"{err.decode(errors='replace')}"
        )
    if not prints_result:
        return {}
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"{script.name} printed no result:\n{text}\n{err.decode(errors='replace')}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def write_settings(sandboxes: Sandboxes, directory: Path, store_url: str) -> Path:
    """Write what a child needs to build cosell's settings (sandbox JSON, store URL)."""
    path = directory / "settings.json"
    path.write_text(json.dumps({**sandboxes.info(), "store_url": store_url}), encoding="utf-8")
    return path


def load_settings(path: Path) -> Any:
    """cosell's settings for the sandboxes described in `path` (see `write_settings`)."""
    from cosell.config import Settings

    document = json.loads(path.read_text(encoding="utf-8"))
    return Settings.for_sandboxes(
        document["partner_center"], document["salesforce"], store_url=document["store_url"]
    )


async def measure(
    size: int, latency_seconds: float, directory: Path, *, profile: Path | None = None
) -> dict[str, Any]:
    """One backfill of `size` referrals into an empty org; its row of figures.

    Args:
        size: referrals to seed and backfill.
        latency_seconds: injected on every API call of both sandboxes.
        directory: a fresh directory for the store and the child's settings.
        profile: where the child writes its pyinstrument profile, or None.

    Returns:
        The row (the table's columns, and details for the JSON).
    """
    async with served_sandboxes(latency_seconds) as sandboxes:
        seed_seconds = seed_referrals(sandboxes, size)
        sandboxes.reset_calls()
        settings = write_settings(sandboxes, directory, f"sqlite:///{directory / 'cosell.db'}")
        extra = [] if profile is None else ["--profile", str(profile / f"backfill-{size}.txt")]
        child = await run_child(SCRIPT, ["--child-sync", str(settings), *extra])
        pc_calls, sf_calls = sandboxes.calls()
        by_route = sandboxes.calls_by_route()
        opportunities = sandboxes.opportunities()
    return {
        "referrals": size,
        "wall s": child["seconds"],
        "CPU s": child["cpu_seconds"],
        "referrals/s": size / child["seconds"],
        "PC calls": pc_calls,
        "SF calls": sf_calls,
        "calls/referral": (pc_calls + sf_calls) / size,
        "peak RSS MiB": child["peak_rss_mib"],
        "created": child["created"],
        "errors": child["errors"],
        "keys": child["keys"],
        "opportunities": opportunities,
        "seed s": seed_seconds,
        "calls by route": by_route,
    }


def child_sync(settings_path: Path, profile: Path | None) -> dict[str, Any]:
    """Child mode: one `cosell sync --full` pass; its time, peak RSS and summary."""
    from rich.console import Console

    from cosell.commands.sync import run_sync

    settings = load_settings(settings_path)
    console = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the child
    with profiled(profile):
        started = time.perf_counter()
        summary = asyncio.run(run_sync(settings, full=True, dry_run=False, console=console))
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss_mib": benchkit.peak_rss_mib(),
        "cpu_seconds": cpu_seconds(),
        "keys": summary.keys_seen,
        "created": summary.count("created"),
        "errors": len(summary.errors),
        "first_errors": [list(e) for e in summary.errors[:3]],
        "api_calls": summary.api_calls,
    }


def cpu_seconds() -> float:
    """CPU seconds this process used so far (user + system), which machine load does not inflate."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def profiled(path: Path | None) -> Iterator[None]:
    """Profile the body with pyinstrument into `path` (a text report); nothing when None."""
    if path is None:
        yield
        return
    try:
        from pyinstrument import Profiler  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise SystemExit(
            "--profile needs pyinstrument: .venv/bin/pip install pyinstrument"
        ) from None
    profiler = Profiler(async_mode="disabled")
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(profiler.output_text(unicode=True, show_all=False), encoding="utf-8")


def notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The targets, met or missed, under the table."""
    lines: list[str] = []
    worst = max(row["calls/referral"] for row in rows)
    verdict = "met" if worst <= TARGET_CALLS_PER_REFERRAL else "MISSED"
    lines.append(
        f"API calls per referral <= {TARGET_CALLS_PER_REFERRAL}: {verdict} (worst {worst:.4f})"
    )
    for row in rows:
        if row["referrals"] == 10_000:
            seconds = row["wall s"]
            verdict = "met" if seconds < TARGET_SECONDS_FOR_10K else "MISSED"
            lines.append(
                f"10,000 referrals in < {TARGET_SECONDS_FOR_10K:.0f} s: {verdict} ({seconds:.1f} s)"
            )
    if len(rows) > 1:
        low, high = rows[0], rows[-1]
        lines.append(
            f"memory: {low['peak RSS MiB']:.0f} MiB at {low['referrals']:,} referrals, "
            f"{high['peak RSS MiB']:.0f} MiB at {high['referrals']:,} (target: flat)"
        )
    failed = [row for row in rows if row["errors"] or row["opportunities"] != row["referrals"]]
    for row in failed:
        lines.append(
            f"NOT COMPLETE at {row['referrals']:,}: {row['errors']} error(s), "
            f"{row['opportunities']:,} opportunities in Salesforce"
        )
    return lines


def build_parser() -> argparse.ArgumentParser:
    """The script's options."""
    parser = benchkit.parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=benchkit.sizes,
        default=benchkit.sizes(DEFAULT_SIZES),
        help=f"referrals to backfill, comma-separated (default {DEFAULT_SIZES})",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=DEFAULT_LATENCY_MS,
        help=f"latency injected on every API call, ms (default {DEFAULT_LATENCY_MS:.0f})",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="profile each pass with pyinstrument (pip install pyinstrument) into DIR",
    )
    parser.add_argument("--child-sync", type=Path, help=argparse.SUPPRESS)
    return parser


async def run(
    sizes: Sequence[int], latency_seconds: float, profile: Path | None
) -> list[dict[str, Any]]:
    """Measure every size, in a fresh temporary directory each."""
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="cosell-backfill-") as directory:
            rows.append(await measure(size, latency_seconds, Path(directory), profile=profile))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with the hidden `--child-sync`, one pass); the exit status."""
    args = build_parser().parse_args(argv)
    if args.child_sync is not None:
        print(json.dumps(child_sync(args.child_sync, args.profile)))
        return 0
    if args.latency_ms < 0:
        build_parser().error("--latency-ms must be 0 or more")
    from cosell.server.logs import configure_logging

    configure_logging("console", level=40)
    profile = args.profile.resolve() if args.profile else None
    rows = asyncio.run(run(args.sizes, args.latency_ms / 1000, profile))
    report = benchkit.Report(
        title=f"cosell sync --full backfill, {args.latency_ms:g} ms per API call",
        options={"sizes": args.sizes, "latency_ms": args.latency_ms},
        columns=COLUMNS,
        rows=rows,
        notes=notes(rows),
    )
    report.print()
    report.write_json(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
