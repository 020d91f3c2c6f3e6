"""`cosell sandbox up` serves both sandboxes on loopback from one process."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx


def test_up_serves_both_sandboxes_and_stops_on_sigint(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "cosell.cli",
        "sandbox",
        "up",
        "--pc-port",
        "0",
        "--sf-port",
        "0",
    ]
    command += ["--json", "--seed", "7", "--data-dir", str(tmp_path / "state")]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            info = json.loads(line)
            pc, sf = info["partner_center"], info["salesforce"]
            versions = httpx.get(f"{sf['base_url']}/services/data/", timeout=10)
            assert versions.status_code == 200
            assert {"version": "66.0"}.items() <= versions.json()[-1].items()
            token = httpx.post(
                pc["token_endpoint"],
                data={
                    "grant_type": "refresh_token",
                    "client_id": pc["client_id"],
                    "client_secret": pc["client_secret"],
                    "refresh_token": pc["refresh_token"],
                    "resource": "https://api.partner.microsoft.com",
                },
                timeout=10,
            )
            assert token.status_code == 200, token.text
            listing = httpx.get(
                pc["referrals_api"],
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                timeout=10,
            )
            assert listing.status_code == 200, listing.text
            assert listing.json()["value"] == []
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
    assert proc.returncode == 0
    assert (tmp_path / "state" / "salesforce-keys").is_dir()


def test_write_config_lets_cosell_sync_run_against_the_sandboxes(tmp_path: Path) -> None:
    settings = tmp_path / "cosell.toml"
    command = [
        sys.executable,
        "-m",
        "cosell.cli",
        "sandbox",
        "up",
        "--pc-port",
        "0",
        "--sf-port",
        "0",
    ]
    command += ["--json", "--write-config", str(settings)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            pc = json.loads(proc.stdout.readline())["partner_center"]
            assert settings.stat().st_mode & 0o777 == 0o600
            incoming = httpx.post(
                f"{pc['control_api']}/referrals/incoming",
                json={"kind": "co-sell", "name": "Fabrikam - Copilot rollout"},
                timeout=10,
            )
            assert incoming.status_code in (200, 201), incoming.text
            sync = subprocess.run(
                [sys.executable, "-m", "cosell.cli", "sync", "--full", "--config", str(settings)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                cwd=tmp_path,
            )
            assert sync.returncode == 0, sync.stdout + sync.stderr
            assert "created" in sync.stdout.lower()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)


def test_up_refuses_a_taken_port() -> None:
    from cosell_sandbox.serving import listen

    taken = listen(0)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cosell.cli", "sandbox", "up", "--pc-port", str(taken.port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        taken.sock.close()
    assert result.returncode == 2
    assert "pick another --port" in result.stderr


def test_write_config_keeps_an_existing_file_without_force(tmp_path: Path) -> None:
    settings = tmp_path / "cosell.toml"
    settings.write_text("# my own settings\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "cosell.cli", "sandbox", "up", "--write-config", str(settings)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"--write-config {settings} exists" in result.stderr
    assert "Pass --force to replace it" in result.stderr
    assert result.stdout == ""  # nothing was started
    assert settings.read_text(encoding="utf-8") == "# my own settings\n"


def test_write_config_with_force_replaces_the_file(tmp_path: Path) -> None:
    settings = tmp_path / "cosell.toml"
    settings.write_text("# my own settings\n", encoding="utf-8")
    command = [sys.executable, "-m", "cosell.cli", "sandbox", "up", "--pc-port", "0"]
    command += ["--sf-port", "0", "--json", "--write-config", str(settings), "--force"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            pc = json.loads(proc.stdout.readline())["partner_center"]
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
    written = settings.read_text(encoding="utf-8")
    assert "# my own settings" not in written
    assert f'referrals_url = "{pc["referrals_api"]}"' in written
    assert f'client_secret = "{pc["client_secret"]}"' in written
