"""Smoke run of bench/scale_out.py: a tiny backfill with one and two workers on PostgreSQL."""

from __future__ import annotations

import os
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    not os.environ.get("COSELL_TEST_POSTGRES_URL"),
    reason="COSELL_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server (CI sets it)",
)


def test_scale_out_backfill_runs_with_one_and_two_workers(bench: Any) -> None:
    document = bench(
        "scale_out.py",
        "--workers",
        "1,2",
        "--size",
        "5",
        "--latency-ms",
        "1",
        "--latency-changes",
        "0",
    )

    backfills = [row for row in document["rows"] if row["run"] == "backfill"]
    assert [row["workers"] for row in backfills] == [1, 2]
    for row in backfills:
        assert row["opportunities"] == 5  # every seeded referral reached Salesforce
        assert row["errors"] == 0
        assert row["referrals/s"] > 0
    assert backfills[0]["speed-up"] == 1.0


def test_scale_out_runs_the_latency_script_per_worker_count(bench: Any) -> None:
    document = bench(
        "scale_out.py",
        "--workers",
        "1",
        "--size",
        "2",
        "--latency-ms",
        "1",
        "--latency-changes",
        "2",
    )

    latency = [row for row in document["rows"] if str(row["run"]).startswith("latency:")]
    assert {row["workers"] for row in latency} == {1}
    assert len(latency) == 2  # the webhook path and the poller path
    assert all(row["changes"] == 2 for row in latency)
