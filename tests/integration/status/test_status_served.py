"""`cosell status` and `cosell audit` as a user runs them: processes against served sandboxes.

`cosell sandbox up --write-config` serves both sandboxes on loopback and writes the settings;
`cosell sync --full` links Microsoft's referral; then status reads Salesforce's API usage with
the configured credentials, and audit shows the deal by its bare referral id.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx


def cosell(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cosell.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,  # a bound, not an expectation: each command takes seconds
        check=False,
        cwd=cwd,
    )


def test_status_and_audit_after_a_sync_against_served_sandboxes(tmp_path: Path) -> None:
    settings = tmp_path / "cosell.toml"
    command = [sys.executable, "-m", "cosell.cli", "sandbox", "up", "--json"]
    command += ["--pc-port", "0", "--sf-port", "0", "--write-config", str(settings)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    ) as proc:
        try:
            assert proc.stdout is not None
            pc = json.loads(proc.stdout.readline())["partner_center"]
            incoming = httpx.post(
                f"{pc['control_api']}/referrals/incoming",
                json={"kind": "co-sell", "name": "Fabrikam - Copilot rollout"},
                timeout=10,
            )
            assert incoming.status_code in (200, 201), incoming.text
            referral_id = incoming.json()["id"]
            synced = cosell("sync", "--full", "--config", str(settings), cwd=tmp_path)
            assert synced.returncode == 0, synced.stdout + synced.stderr

            status = cosell("status", "--json", "--config", str(settings), cwd=tmp_path)
            assert status.returncode == 0, status.stdout + status.stderr
            document = json.loads(status.stdout)
            assert document["links"]["Synced"] == 1
            assert document["never_synced"] == 0
            assert document["errors"] == []
            usage = document["api_usage"]["salesforce"]
            assert usage["error"] is None, usage
            assert 0 < usage["used"] < usage["limit"]

            audit = cosell("audit", referral_id, "--json", "--config", str(settings), cwd=tmp_path)
            assert audit.returncode == 0, audit.stdout + audit.stderr
            history = json.loads(audit.stdout)
            assert history["key"] == f"referral:{referral_id}"
            assert history["link"]["sync_status"] == "Synced"
            assert history["link"]["record_id"] is not None
            assert history["audit"], history
            assert history["conflicts"] == []
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
