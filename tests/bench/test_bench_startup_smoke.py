"""Smoke runs of bench/startup.py and bench/store_commands.py at a tiny size (not measurements)."""

from __future__ import annotations

from typing import Any


def test_startup_times_every_command(bench: Any) -> None:
    document = bench("startup.py", "--runs", "1")
    commands = [row["command"] for row in document["rows"]]
    assert commands[:2] == ["cosell --version", "cosell --help"]
    for command in ("cosell plan --help", "cosell db upgrade --help", "cosell sandbox up --help"):
        assert command in commands
    assert all(row["median_s"] > 0 and row["cpu_s"] > 0 for row in document["rows"])


def test_store_commands_times_status_audit_and_plan(bench: Any) -> None:
    document = bench("store_commands.py", "--links", "20", "--runs", "1")
    commands = [row["command"] for row in document["rows"]]
    assert commands == [
        "cosell status",
        "cosell status --json",
        "cosell audit KEY",
        "cosell plan KEY",
    ]
    assert document["options"]["links"] == 20
    assert all(row["cpu_s"] > 0 for row in document["rows"])
