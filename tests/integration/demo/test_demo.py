"""`cosell demo` runs as a user runs it: a subprocess, one command, its output and exit status."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"
STEPS = 7  # the story's steps, each one line with its latency
STEP_LINE = re.compile(r"^✔ (\d)\. (.+?)\s+(\d+\.\d\d) s$", re.MULTILINE)
# The shapes of the sandboxes' secrets (drawn at random in the demo, so matched by shape): an
# Entra client secret, Entra and Salesforce refresh tokens, access tokens (a JWT, a Salesforce
# session id), a PEM private key.
SECRET_SHAPES = re.compile(
    r"[A-Za-z0-9]{3}8Q~|0\.A[A-Za-z0-9_-]{100}|5Aep861|00D\w{12}!AQ|eyJ[\w-]{10,}\.eyJ|PRIVATE KEY"
)


ERROR_LINE = re.compile(r"^.*\[(?:error|critical)\s*\].*$", re.MULTILINE)


def _demo(tmp_path: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cosell.cli", "demo", *args],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(SRC),
            "HOME": str(Path.home()),
            "TMPDIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_demo_plays_every_step_with_its_latency_and_exits_0(tmp_path: Path) -> None:
    started = time.monotonic()
    result = _demo(tmp_path)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert elapsed < 60, f"the demo took {elapsed:.1f} s"
    steps = STEP_LINE.findall(result.stdout)
    assert [int(number) for number, _, _ in steps] == list(range(1, STEPS + 1)), result.stdout
    assert all(float(latency) < 15 for _, _, latency in steps), steps
    assert "Every step synced (7 steps)." in result.stdout
    assert "not synced" not in result.stdout
    assert '"event"' not in result.stdout  # no log lines among the story
    # The engine stops cleanly: DBOS is destroyed only once its workflows (a scheduled poll
    # running as the story ends) have ended, so no error is logged at exit.
    assert ERROR_LINE.findall(output) == [], output
    assert "Traceback" not in output, output
    assert SECRET_SHAPES.findall(output) == []
    assert list(tmp_path.glob("cosell-demo-*")) == []  # its directory is removed at exit


def test_a_step_that_does_not_sync_says_what_it_expected_and_exits_1(tmp_path: Path) -> None:
    # No time to sync at all: the first step is looked at once, before cosell can act.
    result = _demo(tmp_path, "--step-timeout", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "✘ 1. Microsoft shares two co-sell referrals  not synced after 0 s" in result.stdout
    assert "expected: two opportunities in Salesforce, in Prospecting" in result.stdout
    assert "saw:      no opportunity yet for 'Contoso - Azure migration'" in result.stdout
    assert "Not every step synced: the demo exits 1." in result.stdout
    assert STEP_LINE.search(result.stdout) is None
    assert SECRET_SHAPES.findall(result.stdout + result.stderr) == []
    assert list(tmp_path.glob("cosell-demo-*")) == []


def test_the_customised_org_story_plays_with_the_example_profile(tmp_path: Path) -> None:
    examples = SRC.parent / "sandbox" / "examples"
    result = _demo(
        tmp_path,
        "--org-profile",
        str(examples / "customised-org.yaml"),
        "--mapping",
        str(examples / "customised-org-mapping.yaml"),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    steps = STEP_LINE.findall(result.stdout)
    assert [int(number) for number, _, _ in steps] == [1, 2], result.stdout
    text = " ".join(result.stdout.split())
    assert "opportunity on the existing account 'Fabrikam Retail', 1 contact role(s)" in text
    assert "record type Partner_Deal, Region EMEA" in text
    assert "Partner Center referral is Active/Accepted, notes 'Follow up: Needs Analysis'" in text
    assert "Every step synced (2 steps)." in result.stdout
    assert SECRET_SHAPES.findall(output) == []


def test_an_unreadable_org_profile_is_refused_with_its_problem(tmp_path: Path) -> None:
    profile = tmp_path / "profile.yaml"
    profile.write_text("validation_rules: [{object: Nope}]\n", encoding="utf-8")
    result = _demo(tmp_path, "--org-profile", str(profile), timeout=60)
    assert result.returncode == 1
    assert "Error:" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
