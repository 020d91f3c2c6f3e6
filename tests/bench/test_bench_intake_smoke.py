"""Smoke run of bench/webhook_intake.py: a couple of seconds at a tiny rate (not a measurement)."""

from __future__ import annotations

from typing import Any


def test_webhook_intake_runs_and_loses_nothing(bench: Any) -> None:
    document = bench(
        "webhook_intake.py", "--seconds", "2", "--rate", "20", "--concurrency", "2",
        "--referrals", "5", "--drain-timeout", "30",
    )  # fmt: skip
    (row,) = document["rows"]
    assert row["sent"] > 0
    assert row["accepted"] == row["sent"]  # a tiny rate: every callback is answered 200
    assert row["lost"] == 0
    assert document["options"]["rate"] == 20
