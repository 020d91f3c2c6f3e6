"""How long each `cosell` command takes to start: `--version`, `--help` and every command's `--help`.

    .venv/bin/python bench/startup.py [--runs 5] [--src DIR] [--json FILE]

Each case runs `python -m cosell.cli ARGS` (what the `cosell` script runs) in a fresh
subprocess `--runs` times and reports the median and the slowest wall time, and the median CPU
time (user + system) of the process, which other work on a shared machine disturbs less. A command's
`--help` answers once its module is imported and its options are built, so it is the command's
start-up cost without its work. The commands are found by walking the CLI itself, so a new one
is measured without editing this script. `--src DIR` puts another checkout's `src` first on
PYTHONPATH, to measure it with this virtualenv (say, an older commit from `git archive`).

Target: every case under 1 s.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

import benchkit
import typer

TARGET_SECONDS: Final = 1.0


def command_paths() -> list[list[str]]:
    """Every command and group of the CLI, as the arguments that name it (`["db", "upgrade"]`)."""
    from cosell.cli import app

    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: Any, context: Any, path: list[str]) -> None:
        for name in command.list_commands(context):
            child = command.get_command(context, name)
            paths.append([*path, name])
            if hasattr(child, "list_commands"):
                walk(child, typer.Context(child, info_name=name, parent=context), [*path, name])

    walk(root, typer.Context(root, info_name="cosell"), [])
    return paths


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(
    args: list[str], runs: int, env: dict[str, str]
) -> tuple[list[float], list[float]]:
    """Wall and CPU times of `runs` fresh runs of `python -m cosell.cli *args` (each must exit 0)."""
    times: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        cpu_before = _children_cpu()
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "cosell.cli", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=True,
            timeout=120,
        )
        times.append(time.perf_counter() - started)
        cpu.append(_children_cpu() - cpu_before)
    return times, cpu


def main() -> None:
    parser = benchkit.parser(__doc__.splitlines()[0])
    parser.add_argument("--runs", type=benchkit.positive, default=5, help="runs per case")
    parser.add_argument(
        "--src", type=Path, help="measure this checkout's src/ instead of the installed cosell"
    )
    options = parser.parse_args()
    env = dict(os.environ)
    if options.src is not None:
        env["PYTHONPATH"] = str(options.src.resolve())
    cases = [["--version"], ["--help"]] + [[*path, "--help"] for path in command_paths()]
    report = benchkit.Report(
        title="cosell start-up (wall time of a fresh process)",
        options={"runs": options.runs, "src": str(options.src or "installed")},
        columns=["command", "median_s", "max_s", "cpu_s"],
    )
    for args in cases:
        times, cpu = time_command(args, options.runs, env)
        report.rows.append(
            {
                "command": "cosell " + " ".join(args),
                "median_s": statistics.median(times),
                "max_s": max(times),
                "cpu_s": statistics.median(cpu),
            }
        )
    slow = [row["command"] for row in report.rows if row["median_s"] >= TARGET_SECONDS]
    report.notes.append(
        f"target: every median under {TARGET_SECONDS:g} s: "
        + ("met" if not slow else f"missed by {len(slow)}: " + ", ".join(slow))
    )
    report.print()
    report.write_json(options.json)


if __name__ == "__main__":
    main()
