"""Smoke runs of the benchmark scripts in bench/: each runs once at a tiny size.

These are not measurements (the figures are not checked); they keep the scripts from rotting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str, *args: str, tmp_path: Path, timeout: float = 240) -> dict[str, Any]:
    """Run `bench/<script>` with `args` and `--json`, and return the JSON it wrote."""
    out = tmp_path / f"{Path(script).stem}.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{script} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    document: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert document["rows"], f"{script} measured nothing:\n{done.stdout}"
    return document


@pytest.fixture
def bench(tmp_path: Path) -> Any:
    """`bench(script, *args)`: run a benchmark script at the given (tiny) size."""

    def run(script: str, *args: str) -> dict[str, Any]:
        return run_bench(script, *args, tmp_path=tmp_path)

    return run
