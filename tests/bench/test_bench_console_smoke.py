"""Smoke run of bench/console.py at a tiny size (not a measurement)."""

from __future__ import annotations

from typing import Any


def test_console_bench_times_every_page_signed_in(bench: Any) -> None:
    document = bench("console.py", "--links", "150", "--runs", "1")
    pages = [row["page"] for row in document["rows"]]
    assert pages[:2] == ["overview", "search by deal name"]
    assert "one deal" in pages
    assert all(row["status"] == 200 for row in document["rows"])
    assert all(row["median_ms"] > 0 for row in document["rows"])
