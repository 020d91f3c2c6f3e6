"""Salesforce edit -> Partner Center latency, polled vs Change Data Capture; idle API calls.

    .venv/bin/python bench/cdc_latency.py [--changes 40] [--referrals 10] [--rate 2]
        [--latency-ms 100] [--poll-interval 5] [--idle 10] [--json FILE]

The real service (`cosell serve`, see `syncbench`) syncs the two sandboxes, which add
`--latency-ms` to every REST call, twice: once with `[salesforce] changes = "poll"` (the
Salesforce poller runs every `--poll-interval` seconds) and once with `changes = "cdc"` (the
Salesforce sandbox serves its Pub/Sub API over gRPC; the poller rests while the stream is
live). In each, a seller (not cosell's user) changes an opportunity's Amount `--changes` times
(`latency.measure`, open loop at `--rate` a second), and the time until Partner Center shows
the new deal value is measured. Then nothing changes for `--idle` seconds, and the Salesforce
poller's queries cosell makes meanwhile are counted (the cost of noticing that nothing
changed), and every Salesforce call beside them.

The sandbox adds no latency to the gRPC stream itself; Salesforce delivers change events a
fraction of a second after the commit, which a real org adds to the CDC figures.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import benchkit
import syncbench
from latency import POLLER, Direction, measure
from syncbench import HarnessOptions

TARGET_P95: Final = 1.0  # issue 15: p95 under 1 s at 100 ms per API call, through CDC


async def one_mode(args: argparse.Namespace, directory: Path, changes: str) -> dict[str, object]:
    """Measure one way of noticing Salesforce changes; the table row."""
    options = HarnessOptions(
        latency_ms=args.latency_ms, poll_interval=args.poll_interval, changes=changes
    )
    run_directory = directory / changes
    run_directory.mkdir()
    direction = Direction(f"{changes}: Salesforce -> Partner Center", POLLER.change, POLLER.shows)
    async with syncbench.running(options, run_directory) as world:
        pairs = await syncbench.setup_pairs(world, min(args.referrals, args.changes))
        await syncbench.settle(world)
        await world.inject_latency(args.latency_ms)
        measured = await measure(
            world, pairs, args.changes, direction, rate=args.rate, rng=random.Random(args.seed)
        )
        await syncbench.settle(world)
        before = world.calls()["salesforce"]
        await asyncio.sleep(args.idle)
        idle = world.calls()["salesforce"].minus(before)
    values = measured.latencies
    return {
        "changes_via": changes,
        "changes": len(values),
        "p50_s": benchkit.percentile(values, 50),
        "p95_s": benchkit.percentile(values, 95),
        "max_s": max(values) if values else float("nan"),
        "idle_sf_polls": idle.poll_reads,
        "idle_sf_calls": idle.reads + idle.writes,
    }


async def run(args: argparse.Namespace, directory: Path) -> benchkit.Report:
    """Both modes, one after the other, and the report."""
    rows = [await one_mode(args, directory, mode) for mode in ("poll", "cdc")]
    p95 = rows[1]["p95_s"]
    assert isinstance(p95, float)
    verdict = "met" if p95 < TARGET_P95 else "MISSED"
    return benchkit.Report(
        title=f"Salesforce -> Partner Center latency, poll vs CDC ({args.latency_ms:g} ms per "
        "API call)",
        options={
            "changes": args.changes,
            "referrals": args.referrals,
            "rate_per_s": args.rate,
            "latency_ms": args.latency_ms,
            "poll_interval_s": args.poll_interval,
            "idle_s": args.idle,
            "seed": args.seed,
            "load_average": syncbench.load_average(),
        },
        columns=[
            "changes_via",
            "changes",
            "p50_s",
            "p95_s",
            "max_s",
            "idle_sf_polls",
            "idle_sf_calls",
        ],
        rows=rows,
        notes=[
            f"Target p95 < {TARGET_P95:g} s through CDC: {verdict} (p95 {p95:.2f} s).",
            f"idle_sf_polls: Salesforce calls spent noticing changes (the poller's queries) in "
            f"{args.idle:g} s without any change (target for CDC: 0); idle_sf_calls: every "
            "Salesforce call then (an echo's reconcile, found by the Partner Center poller, may "
            "fall in the window).",
        ],
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = benchkit.parser(__doc__.splitlines()[0] if __doc__ else "cdc latency")
    parser.add_argument("--changes", type=benchkit.positive, default=40, help="seller edits")
    parser.add_argument(
        "--referrals", type=benchkit.positive, default=10, help="opportunities edited"
    )
    parser.add_argument(
        "--rate", type=benchkit.non_negative, default=2.0, help="edits a second (0: closed loop)"
    )
    parser.add_argument(
        "--idle", type=benchkit.non_negative, default=10.0, help="seconds without changes"
    )
    parser.add_argument("--seed", type=int, default=7, help="seeds the values and pauses")
    syncbench.add_world_options(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (targets are reported, not enforced), else 1."""
    args = parse_args(argv)
    return syncbench.main(lambda directory: run(args, directory), args, "cdc-latency")


if __name__ == "__main__":
    raise SystemExit(main())
