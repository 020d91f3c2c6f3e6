"""Smoke runs of bench/latency.py and bench/api_calls.py at a tiny size (not measurements)."""

from __future__ import annotations

from typing import Any


def test_latency_measures_both_paths(bench: Any) -> None:
    document = bench(
        "latency.py",
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
    )
    rows = {row["path"]: row for row in document["rows"]}
    assert set(rows) == {
        "webhook: Partner Center -> Salesforce",
        "poller: Salesforce -> Partner Center",
    }
    for row in rows.values():
        assert row["changes"] == 2
        assert 0 < row["p50_s"] <= row["p95_s"] <= row["max_s"]
    assert document["options"]["workers"] == 1


def test_api_calls_counts_every_case(bench: Any) -> None:
    document = bench(
        "api_calls.py", "--referrals", "1", "--latency-ms", "10", "--poll-interval", "1"
    )
    cases = [row["case"] for row in document["rows"]]
    assert cases[:5] == [
        "Partner Center change -> Salesforce",
        "echo of cosell's Salesforce write",
        "Salesforce change -> Partner Center",
        "echo of cosell's Partner Center write",
        "duplicate webhook, nothing changed",
    ]
    assert cases[5].startswith("poller tick")
    changed = document["rows"][0]
    assert changed["notifications"] == 1
    assert changed["sf_writes"] > 0
    assert document["rows"][2]["pc_writes"] > 0
