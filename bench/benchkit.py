"""What every benchmark script shares: options, percentiles, peak memory, the table, the JSON.

A script builds one `Report` (its title, the machine, the options it ran with, and rows of
figures), prints it as a table and, with `--json FILE`, writes the same figures as JSON. The
scripts measure; they assert nothing (targets are printed next to the figures, and a missed
target is reported, not failed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every script takes (`--json FILE`)."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON"
    )
    return result


def sizes(text: str) -> list[int]:
    """Parse a comma-separated list of positive sizes ("1000,10000")."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 1000,10000, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be positive whole numbers, got {text!r}")
    return values


def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct` percentile (0-100) of `values` by the nearest-rank method; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


@dataclass
class Report:
    """The figures of one run: printed as a table, written as JSON.

    Attributes:
        title: what was measured.
        options: the options the script ran with (sizes, latency, workers...).
        columns: the table's column names, in order; every row has these keys.
        rows: one dict per measured case.
        notes: lines printed under the table (targets, met or missed).
    """

    title: str
    options: dict[str, Any]
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def print(self, console: Console | None = None) -> None:
        """Print the table and the notes."""
        console = console or Console()
        table = Table(title=self.title)
        for column in self.columns:
            table.add_column(column, justify="left" if column == self.columns[0] else "right")
        for row in self.rows:
            table.add_row(*(_cell(row.get(column)) for column in self.columns))
        console.print(table)
        for note in self.notes:
            console.print(note)

    def write_json(self, path: Path | None) -> None:
        """Write the figures to `path` as JSON (nothing when `path` is None)."""
        if path is None:
            return
        document = {
            "title": self.title,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "options": self.options,
            "rows": self.rows,
            "notes": self.notes,
        }
        path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def positive(text: str) -> int:
    """Parse a positive whole number (an argparse `type`)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative(text: str) -> float:
    """Parse a number of at least 0 (an argparse `type`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, got {text}")
    return value
