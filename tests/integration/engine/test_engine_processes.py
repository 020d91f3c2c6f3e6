"""Process-level engine tests: real worker processes, sandboxes served on loopback.

1. Two workers on PostgreSQL share the work and never reconcile one key at the same time
   (each run's start and end per key and worker is recorded; no two runs of a key overlap).
2. A worker killed between the Partner Center create and the write-back (W1's failpoint,
   `COSELL_FAILPOINT=after-referral-create`, which ends the process like `kill -9`) is
   restarted, recovers its workflow, and the opportunity ends with exactly one referral.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from engine_worker import PROTOCOL, loopback_factory
from served_kit import incoming_lead, shared_opportunity

from cosell.clock import SystemClock
from cosell.store import Store
from cosell.store.types import record_key, referral_key

WORKER = Path(__file__).with_name("engine_worker.py")
SRC = Path(__file__).resolve().parents[3] / "src"
WORKER_TIMEOUT = 45  # seconds: far above what a worker needs (a few seconds), below CI's patience


def _worker(config: dict[str, Any], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{WORKER.parent}"}
    environment.pop("COSELL_FAILPOINT", None)
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, str(WORKER), json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def _said(proc: subprocess.Popen[str]) -> str:
    """The worker's next protocol line (its logs on stdout are skipped); '' at its end."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(PROTOCOL):
            return line.removeprefix(PROTOCOL).strip()
    return ""


def _expect(proc: subprocess.Popen[str], line: str) -> None:
    got = _said(proc)
    if got != line:
        proc.kill()
        _, err = proc.communicate(timeout=WORKER_TIMEOUT)
        raise AssertionError(f"worker said {got!r}, expected {line!r}; stderr:\n{err[-3000:]}")


def _send(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _runs(record_file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record_file.read_text().splitlines() if line]


@pytest.mark.postgres
def test_two_workers_share_the_work_and_never_reconcile_a_key_twice_at_once(
    sandboxes: dict[str, Any], postgres_url: str, tmp_path: Path
) -> None:
    from dbos import DBOS

    pc, sf = sandboxes["partner_center"], sandboxes["salesforce"]
    leads = [incoming_lead(pc, f"Lead {n}") for n in range(8)]
    opportunities = [shared_opportunity(sf, f"Deal {n}") for n in range(4)]
    keys = [referral_key(r) for r in leads] + [record_key("Opportunity", o) for o in opportunities]

    # Migrate once up front, as `cosell db upgrade` would before starting several workers.
    Store.open(postgres_url, clock=SystemClock()).close()
    DBOS.migrate(postgres_url.replace("postgresql+psycopg", "postgresql"))

    record_file = tmp_path / "runs.jsonl"
    base = {"store_url": postgres_url, "record_file": str(record_file), **sandboxes}
    workers = [
        _worker({**base, "worker": "w1", "notify": keys, "repeat": 3, "full": True}),
        _worker({**base, "worker": "w2", "notify": keys[::-1], "repeat": 3}),
    ]
    try:
        for proc in workers:
            _expect(proc, "ready")
        for proc in workers:
            _send(proc, "go")
        for proc in workers:
            _expect(proc, "notified")
        for proc in workers:
            _send(proc, "drain")
        results = [json.loads(_said(proc)) for proc in workers]
        for proc in workers:
            _, err = proc.communicate(timeout=WORKER_TIMEOUT)
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=WORKER_TIMEOUT)
    assert results[0]["pass_errors"] == []

    runs = _runs(record_file)
    assert {run["worker"] for run in runs} == {"w1", "w2"}, "both workers must take work"
    by_key: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for run in runs:
        for key in run["keys"]:
            by_key[key].append((run["start"], run["end"], run["worker"]))
    assert set(keys) <= set(by_key)
    for key, spans in by_key.items():
        spans.sort()
        for (_, end, who), (start, _, next_who) in itertools.pairwise(spans):
            assert end <= start, f"{key} reconciled by {who} and {next_who} at once"

    # And the work was done: every lead has its opportunity, every opportunity its referral.
    store = Store.open(postgres_url, clock=SystemClock(), migrate=False)
    try:
        for lead in leads:
            link = store.link_for_referral(lead)
            assert link is not None
            assert link.record_id is not None
        for opportunity in opportunities:
            link = store.link_for_record("Opportunity", opportunity)
            assert link is not None
            assert link.referral_id is not None
    finally:
        store.close()


def test_a_worker_killed_after_the_referral_create_ends_with_one_referral(
    sandboxes: dict[str, Any], tmp_path: Path
) -> None:
    sf = sandboxes["salesforce"]
    opportunity = shared_opportunity(sf, "Crash test deal")
    store_url = f"sqlite:///{tmp_path / 'cosell.db'}"
    config = {
        "store_url": store_url,
        "record_file": str(tmp_path / "runs.jsonl"),
        "worker": "solo",
        "wait_for_go": False,
        **sandboxes,
    }
    crashing = _worker(
        {**config, "notify": [record_key("Opportunity", opportunity)]},
        env={"COSELL_FAILPOINT": "after-referral-create"},
    )
    _, err = crashing.communicate(timeout=WORKER_TIMEOUT)
    assert crashing.returncode == 137, err[-3000:]

    restarted = _worker(config)  # same worker id: it recovers the workflow it was running
    _, err = restarted.communicate(timeout=WORKER_TIMEOUT)
    assert restarted.returncode == 0, err[-3000:]

    clock = SystemClock()
    store = Store.open(store_url, clock=clock, migrate=False)
    try:
        [referral_id] = asyncio.run(_referrals_carrying(config, store, opportunity))
        record = httpx.get(
            f"{sf['base_url']}/control/records/Opportunity/{opportunity}", timeout=10
        ).json()
        assert record["Referral_Identifier__c"] == referral_id
        link = store.link_for_record("Opportunity", opportunity)
        assert link is not None
        assert link.referral_id == referral_id
        assert store.create_intent(link.id) is None
    finally:
        store.close()


async def _referrals_carrying(config: dict[str, Any], store: Store, opportunity: str) -> list[str]:
    """The ids of the referrals whose externalReferenceId is `opportunity`."""
    async with loopback_factory(config, store, SystemClock())(True) as ctx:
        found = await ctx.partner_center.find_by_external_reference(opportunity)
    return [str(referral.id) for referral in found]
