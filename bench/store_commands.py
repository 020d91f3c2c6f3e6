"""How fast `cosell status`, `cosell audit KEY` and `cosell plan KEY` answer against a large store.

    .venv/bin/python bench/store_commands.py [--links 10000] [--runs 3] [--json FILE]

Both sandboxes run in a `cosell sandbox up` subprocess, which writes the settings
(`--write-config`; the store is a SQLite file in a temporary directory). A Microsoft seller
shares one co-sell referral and `cosell sync --full` links it to a new opportunity: that is the
deal `audit` and `plan` are asked about. Then `--links` more links are written straight into
the store through its API (one in a hundred in Error, each with an audit entry), as a store of
that many synced deals holds. Each command runs `--runs` times in a fresh process (start-up
included, as a user sees it); the median and the slowest wall time are reported, and the median
CPU time of the process (steadier on a shared machine). `plan` also reads the deal from both
sandboxes (running in the same machine's other process).

Target: each under 2 s with 10,000 links.
"""

from __future__ import annotations

import json
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Final

import benchkit
import httpx

from cosell.clock import SystemClock
from cosell.store import Store, SyncStatus

TARGET_SECONDS: Final = 2.0
UP_OPTIONS: Final = ("--pc-port", "0", "--sf-port", "0", "--json", "--write-config", "cosell.toml")
ERROR_EVERY: Final = 100  # one link in a hundred is in Error, so `status` has errors to list


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cosell(*args: str, cwd: Path) -> tuple[float, float]:
    """Run `cosell *args` in `cwd` (it must exit 0); its wall and CPU times."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cosell.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cosell {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return elapsed, _children_cpu() - cpu_before


def seed(store_url: str, links: int) -> None:
    """Write `links` synced links (one in `ERROR_EVERY` in Error), each with an audit entry."""
    clock = SystemClock()
    with Store.open(store_url, clock=clock) as store:
        for number in range(links):
            link = store.create_link(
                sobject="Opportunity",
                record_id=f"006{number:015d}",
                referral_id=str(uuid.UUID(int=number + 1)),
            )
            failed = number % ERROR_EVERY == 0
            store.update_link(
                link.id,
                sync_status=SyncStatus.ERROR if failed else SyncStatus.SYNCED,
                last_error="Salesforce refused the write: FIELD_CUSTOM_VALIDATION_EXCEPTION"
                if failed
                else None,
                last_synced_at=None if failed else clock.now(),
            )
            store.record_audit(link.id, "Created the opportunity from the referral")


def main() -> None:
    parser = benchkit.parser(__doc__.splitlines()[0])
    parser.add_argument("--links", type=benchkit.positive, default=10_000, help="links seeded")
    parser.add_argument("--runs", type=benchkit.positive, default=3, help="runs per command")
    options = parser.parse_args()
    report = benchkit.Report(
        title=f"cosell commands against a store of {options.links:,} links",
        options={"links": options.links, "runs": options.runs},
        columns=["command", "median_s", "max_s", "cpu_s"],
    )
    with tempfile.TemporaryDirectory(prefix="cosell-bench-") as name:
        directory = Path(name)
        up = subprocess.Popen(
            [sys.executable, "-m", "cosell.cli", "sandbox", "up", *UP_OPTIONS],
            cwd=directory,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert up.stdout is not None
            control = json.loads(up.stdout.readline())["partner_center"]["control_api"]
            shared = httpx.post(
                f"{control}/referrals/incoming",
                json={"kind": "co-sell", "name": "Fabrikam - store bench"},
                timeout=30,
            )
            shared.raise_for_status()
            referral_id = str(shared.json()["id"])
            cosell("sync", "--full", cwd=directory)
            started = time.perf_counter()
            seed(f"sqlite:///{directory / 'cosell.db'}", options.links)
            report.notes.append(
                f"seeded {options.links:,} links in {time.perf_counter() - started:.1f} s"
            )
            for args in (
                ["status"],
                ["status", "--json"],
                ["audit", referral_id],
                ["plan", referral_id],
            ):
                runs = [cosell(*args, cwd=directory) for _ in range(options.runs)]
                times = [wall for wall, _ in runs]
                report.rows.append(
                    {
                        "command": "cosell " + " ".join(args).replace(referral_id, "KEY"),
                        "median_s": statistics.median(times),
                        "max_s": max(times),
                        "cpu_s": statistics.median(cpu for _, cpu in runs),
                    }
                )
        finally:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=30)
    slow = [row["command"] for row in report.rows if row["median_s"] >= TARGET_SECONDS]
    report.notes.append(
        f"target: every median under {TARGET_SECONDS:g} s: "
        + ("met" if not slow else "missed by " + ", ".join(slow))
    )
    report.print()
    report.write_json(options.json)


if __name__ == "__main__":
    main()
