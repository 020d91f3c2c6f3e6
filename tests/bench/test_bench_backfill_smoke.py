"""Smoke run of bench/backfill.py: a tiny backfill, once, so the script cannot rot."""

from __future__ import annotations

from typing import Any


def test_backfill_runs_at_a_tiny_size(bench: Any) -> None:
    document = bench("backfill.py", "--sizes", "5", "--latency-ms", "1")

    (row,) = document["rows"]
    assert row["referrals"] == 5
    assert row["opportunities"] == 5  # every seeded referral reached Salesforce
    assert row["errors"] == 0
    assert row["PC calls"] > 0
    assert row["SF calls"] > 0
    assert document["options"] == {"sizes": [5], "latency_ms": 1.0}
