"""Smoke run of bench/cdc_latency.py at a tiny size (not a measurement)."""

from __future__ import annotations

from typing import Any


def test_cdc_latency_measures_both_ways(bench: Any) -> None:
    document = bench(
        "cdc_latency.py",
        "--changes",
        "2",
        "--referrals",
        "1",
        "--latency-ms",
        "10",
        "--poll-interval",
        "1",
        "--rate",
        "0",
        "--idle",
        "2",
    )
    rows = {row["changes_via"]: row for row in document["rows"]}
    assert set(rows) == {"poll", "cdc"}
    for row in rows.values():
        assert row["changes"] == 2
        assert 0 < row["p50_s"] <= row["p95_s"] <= row["max_s"]
    assert rows["cdc"]["idle_sf_polls"] == 0  # nothing changed: noticing that costs no call
    assert rows["poll"]["idle_sf_polls"] >= 1  # the poller asks every second
