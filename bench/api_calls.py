"""API calls per change: what each sandbox served for a propagated change, and for an echo.

    .venv/bin/python bench/api_calls.py [--referrals 50] [--latency-ms 100]
        [--poll-interval 5] [--json FILE]

The real service (one `cosell serve` worker, see `syncbench`) syncs the two sandboxes, which
add `--latency-ms` to every API call and count the calls they serve (`syncbench.ApiCounter`:
reads are GETs, writes the rest; tokens, certificates and the control API are not API calls).
`--referrals` opportunities are shared with Microsoft and synced first. Then, one case after
the other, each on every referral at once, with the calls counted per change or notification:

- **Partner Center change -> Salesforce** (webhook): just after a poll tick, a partner user
  changes each referral's deal value; counted from the change until Salesforce shows every new
  Amount (no tick falls in between, so this is the changes' own reconciles).
- **echo of cosell's Salesforce write**: what follows, until the next tick has passed and the
  service is quiet: the Salesforce poller sees the opportunities cosell wrote, the Partner
  Center poller the referrals the partner changed (both already in sync).
- **Salesforce change -> Partner Center** (poller): just after a tick, the seller changes each
  Amount; counted until Partner Center shows every new deal value. Partner Center's callbacks
  about cosell's own updates are held back meanwhile (`ECHO_DELAY_SECONDS` and more per
  referral, the sandbox's
  webhook `delay_seconds` fault), so they are counted in the echo row, not here.
- **echo of cosell's Partner Center write**: those callbacks, and both pollers' next sightings.
- **duplicate webhook, nothing changed**: Partner Center sends one more `referral-updated`
  callback for each referral, unchanged; counted until the service is quiet.
- **poller tick**: the pollers' own reads per tick (one Partner Center list and one Salesforce
  query, changed or not); they are not charged to the cases above.

Targets: at most 3 calls per propagated change; 0 writes for an echo or a duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import benchkit
import syncbench
from syncbench import Calls, HarnessOptions, Pair, World

MAX_CALLS_PER_CHANGE: Final = 3
FIRST_VALUE: Final = 30_000
# Partner Center's callbacks of cosell's writes wait this long plus this much per referral:
# longer than all the changes take to show once the poller found them.
ECHO_DELAY_SECONDS: Final = 2.0
ECHO_DELAY_PER_REFERRAL: Final = 0.05
ARRIVAL_TIMEOUT: Final = 120.0  # seconds every change may take to show (plus a poll interval)


def _since(world: World, before: dict[str, Calls]) -> dict[str, Calls]:
    return {side: calls.minus(before[side]) for side, calls in world.calls().items()}


def case_row(name: str, kind: str, notifications: int, calls: dict[str, Calls]) -> dict[str, Any]:
    """The table row of one case: calls per notification, the pollers' ticks left out.

    Args:
        name: the case, as the table shows it.
        kind: `change` (a propagated change), `echo` (a notification of nothing new) or
            `tick` (the pollers' own reads).
        notifications: the changes or notifications the calls are divided by.
        calls: the calls each sandbox served during the case.
    """
    pc, sf = calls["partner_center"], calls["salesforce"]
    per = 1 / notifications
    pc_reads, sf_reads = pc.reads - pc.poll_reads, sf.reads - sf.poll_reads
    return {
        "case": name,
        "kind": kind,
        "notifications": notifications,
        "pc_reads": pc_reads * per,
        "pc_writes": pc.writes * per,
        "sf_reads": sf_reads * per,
        "sf_writes": sf.writes * per,
        "calls": (pc_reads + pc.writes + sf_reads + sf.writes) * per,
        "poll_reads": pc.poll_reads + sf.poll_reads,
    }


async def propagated(
    world: World,
    pairs: Sequence[Pair],
    change: Callable[[Pair, int], Any],
    shows: Callable[[Pair, int], bool],
    names: tuple[str, str],
    *,
    echo_delay: float = 0.0,
) -> list[dict[str, Any]]:
    """Change every pair at once; rows for the change (until shown) and its echoes.

    The changes are made just after a poll tick, so the next tick is a poll interval away:
    in the webhook direction nothing but the changes' reconciles runs until they show. With
    `echo_delay`, Partner Center's callbacks (about cosell's own writes) are held back that
    long, so that they land in the echo window too. The echo window runs until the next tick
    has passed and the service is quiet: the pollers' sightings of the changes and of cosell's
    writes, and the delayed callbacks.

    Raises:
        BenchError: a change did not show within `ARRIVAL_TIMEOUT` plus a poll interval.
    """
    await syncbench.after_tick(world)
    await world.delay_webhooks(echo_delay)
    before = world.calls()
    values = {pair: FIRST_VALUE + number for number, pair in enumerate(pairs)}
    for pair, value in values.items():
        await change(pair, value)
    await syncbench.wait_until(
        world,
        lambda: all(shows(pair, value) for pair, value in values.items()),
        ARRIVAL_TIMEOUT + world.options.poll_interval,
        names[0],
    )
    arrived = world.calls()
    await world.delay_webhooks(0.0)
    await asyncio.sleep(echo_delay)
    await syncbench.settle(world)
    return [
        case_row(
            names[0], "change", len(pairs), {s: c.minus(before[s]) for s, c in arrived.items()}
        ),
        case_row(names[1], "echo", len(pairs), _since(world, arrived)),
    ]


async def duplicates(world: World, pairs: Sequence[Pair]) -> dict[str, Any]:
    """One more callback per referral, nothing changed; the row (counted until idle)."""
    before = world.calls()
    for pair in pairs:
        world.notify_unchanged(pair.referral_id)
    await asyncio.sleep(1.0)  # the callbacks' delivery
    await syncbench.quiet(world)
    return case_row("duplicate webhook, nothing changed", "echo", len(pairs), _since(world, before))


async def poll_ticks(world: World) -> dict[str, Any]:
    """The pollers' own reads per tick, measured over two idle intervals."""
    poll_interval = world.options.poll_interval
    before = world.calls()
    started = time.monotonic()
    await asyncio.sleep(2 * poll_interval)
    calls = _since(world, before)
    ticks = max(1.0, (time.monotonic() - started) / poll_interval)
    pc, sf = calls["partner_center"], calls["salesforce"]
    return {
        "case": f"poller tick (every {poll_interval} s, changed or not)",
        "kind": "tick",
        "notifications": round(ticks),
        "pc_reads": pc.poll_reads / ticks,
        "pc_writes": 0.0,
        "sf_reads": sf.poll_reads / ticks,
        "sf_writes": 0.0,
        "calls": (pc.poll_reads + sf.poll_reads) / ticks,
        "poll_reads": pc.poll_reads + sf.poll_reads,
    }


async def run(args: argparse.Namespace, directory: Path) -> benchkit.Report:
    """Set everything up, run the cases, and build the report."""
    options = HarnessOptions(latency_ms=args.latency_ms, poll_interval=args.poll_interval)
    async with syncbench.running(options, directory) as world:
        pairs = await syncbench.setup_pairs(world, args.referrals)
        await world.inject_latency(args.latency_ms)
        rows = await propagated(
            world,
            pairs,
            lambda pair, value: _partner_change(world, pair, value),
            lambda pair, value: world.opportunity_amount(pair.opportunity_id) == value,
            ("Partner Center change -> Salesforce", "echo of cosell's Salesforce write"),
        )
        rows += await propagated(
            world,
            pairs,
            lambda pair, value: world.seller_updates(
                "Opportunity", pair.opportunity_id, {"Amount": value + 1}
            ),
            lambda pair, value: world.referral_value(pair.referral_id) == value + 1,
            ("Salesforce change -> Partner Center", "echo of cosell's Partner Center write"),
            echo_delay=ECHO_DELAY_SECONDS + ECHO_DELAY_PER_REFERRAL * len(pairs),
        )
        rows.append(await duplicates(world, pairs))
        rows.append(await poll_ticks(world))
    return benchkit.Report(
        title=f"cosell API calls per notification ({args.latency_ms:g} ms per API call)",
        options={
            "referrals": len(pairs),
            "latency_ms": args.latency_ms,
            "poll_interval_s": args.poll_interval,
            "load_average": syncbench.load_average(),
        },
        columns=[
            "case",
            "notifications",
            "pc_reads",
            "pc_writes",
            "sf_reads",
            "sf_writes",
            "calls",
        ],
        rows=rows,
        notes=_verdicts(rows),
    )


async def _partner_change(world: World, pair: Pair, value: int) -> None:
    world.partner_changes_value(pair.referral_id, value)


def _verdicts(rows: Sequence[dict[str, Any]]) -> list[str]:
    notes = [
        "Calls per change or notification, both sandboxes; the pollers' periodic reads are "
        "not charged to a case (the JSON's poll_reads: those made during it) but shown per tick."
    ]
    for row in (row for row in rows if row["kind"] == "change"):
        ok = row["calls"] <= MAX_CALLS_PER_CHANGE
        notes.append(
            f"Target <= {MAX_CALLS_PER_CHANGE} calls per change, {row['case']}: "
            f"{'met' if ok else 'MISSED'} ({row['calls']:.2f})."
        )
    for row in (row for row in rows if row["kind"] == "echo"):
        writes = row["pc_writes"] + row["sf_writes"]
        notes.append(
            f"Target 0 writes, {row['case']}: {'met' if writes == 0 else 'MISSED'} "
            f"({writes:.2f} per notification)."
        )
    return notes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = benchkit.parser(__doc__.splitlines()[0] if __doc__ else "API calls per change")
    parser.add_argument(
        "--referrals", type=benchkit.positive, default=50, help="referrals changed in each case"
    )
    syncbench.add_world_options(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (targets are reported, not enforced), else 1."""
    args = parse_args(argv)
    return syncbench.main(lambda directory: run(args, directory), args, "calls")


if __name__ == "__main__":
    raise SystemExit(main())
