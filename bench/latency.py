"""Sync latency: a change on one side until the other side shows it, both directions.

    .venv/bin/python bench/latency.py [--changes 200] [--referrals 50] [--rate 8]
        [--latency-ms 100] [--poll-interval 5] [--workers 1] [--store postgresql://...]
        [--json FILE]

The real service (`cosell serve` worker processes, see `syncbench`) syncs the two sandboxes,
which add `--latency-ms` to every API call. `--referrals` opportunities are shared with
Microsoft and synced first (no latency yet); then, on real clocks:

- **webhook path**: a partner user changes a referral's deal value in Partner Center; the
  sandbox sends its signed `referral-updated` callback to cosell, which updates the
  opportunity's Amount in Salesforce. Target: p95 < 2 s.
- **poller path**: the partner's seller (not cosell's user) changes an opportunity's Amount in
  Salesforce; cosell's Salesforce poller (every `--poll-interval` seconds) finds it and updates
  the referral's deal value in Partner Center.

`--changes` changes are made in each direction, spread over the referrals (change i on
referral i mod `--referrals`): at `--rate` changes a second (open loop, like independent
users), or with `--rate 0` as fast as they arrive (closed loop: each referral is changed again
once its previous change arrived, after a random pause of up to `PAUSE_SECONDS`; that measures
throughput, e.g. for `bench/scale_out.py`). A referral is never changed while its previous
change is still on its way, so no change coalesces with another and each latency is one
change's. A change's latency runs from the moment it was made (the sandbox answered) to the
first look that finds its value on the other side (looks every `syncbench.LOOK_SECONDS`,
without API calls). `changes_per_s` is the changes propagated per second of the direction's
wall time (at a rate below saturation, that rate).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import benchkit
import syncbench
from sqlalchemy.engine import make_url
from syncbench import HarnessOptions, Pair, World

PAUSE_SECONDS: Final = 0.5  # at most this long between two changes of one referral
START_SPREAD_SECONDS: Final = 1.0  # the referrals' first changes spread over this long
WEBHOOK_TARGET_P95: Final = 2.0
CHANGE_TIMEOUT: Final = 60.0  # a change not shown after this (plus a poll interval) fails the run
FIRST_VALUE: Final = 20_000  # deal values the benchmark sets count up from here
DEFAULT_RATE: Final = 8.0  # changes a second: far above a real org's, below saturation


@dataclass(frozen=True)
class Direction:
    """One way a change travels: how it is made and how its arrival is seen.

    Attributes:
        name: the row's name.
        change: makes the change (`pair`, the new deal value).
        shows: whether the other side shows that value.
    """

    name: str
    change: Callable[[World, Pair, int], Awaitable[None]]
    shows: Callable[[World, Pair, int], bool]


async def _in_partner_center(world: World, pair: Pair, value: int) -> None:
    world.partner_changes_value(pair.referral_id, value)


async def _in_salesforce(world: World, pair: Pair, value: int) -> None:
    await world.seller_updates("Opportunity", pair.opportunity_id, {"Amount": value})


WEBHOOK = Direction(
    "webhook: Partner Center -> Salesforce",
    _in_partner_center,
    lambda world, pair, value: world.opportunity_amount(pair.opportunity_id) == value,
)
POLLER = Direction(
    "poller: Salesforce -> Partner Center",
    _in_salesforce,
    lambda world, pair, value: world.referral_value(pair.referral_id) == value,
)


@dataclass
class Measured:
    """One direction's latencies (seconds) and the wall time it took."""

    latencies: list[float]
    wall_seconds: float


async def measure(
    world: World,
    pairs: Sequence[Pair],
    changes: int,
    direction: Direction,
    *,
    rate: float,
    rng: random.Random,
) -> Measured:
    """Make `changes` changes in `direction` over `pairs` and time each one's arrival.

    At `rate` changes a second (open loop: change i is due at i / rate seconds), or, with a
    rate of 0, as fast as they arrive (closed loop: each referral is changed again once its
    previous change arrived, after a random pause of up to `PAUSE_SECONDS`).

    Raises:
        BenchError: a change did not arrive within `CHANGE_TIMEOUT` plus a poll interval.
    """
    values = itertools.count(FIRST_VALUE + rng.randrange(1_000_000))
    latencies: list[float] = []
    locks = {pair: asyncio.Lock() for pair in pairs}
    timeout = CHANGE_TIMEOUT + world.options.poll_interval

    async def one_change(pair: Pair) -> None:
        async with locks[pair]:  # never two changes of one referral in flight
            value = next(values)
            await direction.change(world, pair, value)
            latencies.append(
                await syncbench.wait_until(
                    world,
                    lambda: direction.shows(world, pair, value),
                    timeout,
                    f"{direction.name}: value {value} on {pair}",
                )
            )

    async def due(number: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        await one_change(pairs[number % len(pairs)])

    async def changes_of(pair: Pair, count: int) -> None:
        await asyncio.sleep(rng.uniform(0, START_SPREAD_SECONDS))
        for _ in range(count):
            await one_change(pair)
            await asyncio.sleep(rng.uniform(0, PAUSE_SECONDS))

    started = time.monotonic()
    if rate > 0:
        await asyncio.gather(*(due(n, started + n / rate) for n in range(changes)))
    else:
        share, extra = divmod(changes, len(pairs))
        await asyncio.gather(
            *(changes_of(pair, share + (1 if n < extra else 0)) for n, pair in enumerate(pairs))
        )
    return Measured(latencies, time.monotonic() - started)


def row(direction: Direction, measured: Measured) -> dict[str, object]:
    """The table row of one direction."""
    values = measured.latencies
    return {
        "path": direction.name,
        "changes": len(values),
        "p50_s": benchkit.percentile(values, 50),
        "p95_s": benchkit.percentile(values, 95),
        "max_s": max(values) if values else float("nan"),
        "changes_per_s": len(values) / measured.wall_seconds if measured.wall_seconds else 0.0,
    }


async def run(args: argparse.Namespace, directory: Path) -> benchkit.Report:
    """Set everything up, measure both directions, and build the report."""
    options = HarnessOptions(
        latency_ms=args.latency_ms,
        poll_interval=args.poll_interval,
        workers=args.workers,
        store=args.store,
    )
    rng = random.Random(args.seed)
    async with syncbench.running(options, directory) as world:
        pairs = await syncbench.setup_pairs(world, min(args.referrals, args.changes))
        await world.inject_latency(args.latency_ms)
        webhook = await measure(
            world,
            pairs,
            args.changes,
            WEBHOOK,
            rate=args.rate,
            rng=rng,
        )
        await syncbench.settle(world)
        poller = await measure(
            world,
            pairs,
            args.changes,
            POLLER,
            rate=args.rate,
            rng=rng,
        )
    rows = [row(WEBHOOK, webhook), row(POLLER, poller)]
    p95 = rows[0]["p95_s"]
    assert isinstance(p95, float)
    verdict = "met" if p95 < WEBHOOK_TARGET_P95 else "MISSED"
    return benchkit.Report(
        title=f"cosell sync latency ({args.latency_ms:g} ms per API call, "
        f"{args.workers} worker{'s' if args.workers > 1 else ''})",
        options={
            "changes": args.changes,
            "referrals": len(pairs),
            "latency_ms": args.latency_ms,
            "poll_interval_s": args.poll_interval,
            "workers": args.workers,
            "store": "sqlite" if args.store is None else _masked(args.store),
            "rate_per_s": args.rate,
            "seed": args.seed,
            "load_average": syncbench.load_average(),
        },
        columns=["path", "changes", "p50_s", "p95_s", "max_s", "changes_per_s"],
        rows=rows,
        notes=[
            f"Target p95 < {WEBHOOK_TARGET_P95:g} s on the webhook path: {verdict} "
            f"(p95 {p95:.2f} s).",
            f"The poller path waits for the next poll (every {args.poll_interval} s): about "
            "half an interval on average, up to a whole one.",
        ],
    )


def _masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = benchkit.parser(__doc__.splitlines()[0] if __doc__ else "sync latency")
    parser.add_argument(
        "--changes", type=benchkit.positive, default=200, help="changes per direction"
    )
    parser.add_argument(
        "--referrals",
        type=benchkit.positive,
        default=50,
        help="referrals the changes are spread over",
    )
    parser.add_argument(
        "--workers",
        type=benchkit.positive,
        default=1,
        help="cosell serve processes sharing the store",
    )
    parser.add_argument(
        "--store",
        help="PostgreSQL server URL (a scratch database is created there); default SQLite",
    )
    parser.add_argument(
        "--rate",
        type=benchkit.non_negative,
        default=DEFAULT_RATE,
        help="changes made per second in each direction; 0: as fast as they sync (throughput)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seeds the pauses and values")
    syncbench.add_world_options(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (targets are reported, not enforced), else 1."""
    args = parse_args(argv)
    return syncbench.main(lambda directory: run(args, directory), args, "latency")


if __name__ == "__main__":
    raise SystemExit(main())
