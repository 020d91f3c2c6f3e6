"""`cosell connect partner-center` as a user runs it: a process against the served sandboxes.

The test reads what the command prints, plays the admin through the sandbox's control API and
the browser (the authorize page, then the form posted to cosell's loopback listener), and
checks the stored token file.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from commands_kit import Served, write_settings

from cosell.tokenstore import FileTokenStore

WAIT = 60.0  # a bound for the process, not an expectation


def _start(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cosell.cli",
            "connect",
            "partner-center",
            "--config",
            str(config),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _line_with(proc: subprocess.Popen[str], text: str) -> str:
    box: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if text in line:
                box.append(line.strip())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(WAIT)
    assert box, f"no line with {text!r} (exit status {proc.poll()})"
    return box[0]


def _config(served: Served, tmp_path: Path) -> Path:
    data = served.settings_data()
    data["partner_center"]["refresh_token_file"] = str(tmp_path / "pc-token.json")
    data["partner_center"].pop("refresh_token", None)
    return write_settings(tmp_path / "cosell.toml", data)


def test_device_code_sign_in_through_the_command(served: Served, tmp_path: Path) -> None:
    proc = _start(_config(served, tmp_path), "--device-code")
    try:
        prompt = _line_with(proc, "enter the code")
        code = prompt.split("enter the code ")[1].split()[0]
        deadline = time.monotonic() + WAIT
        while True:  # the admin approves once the sign-in shows up
            answer = httpx.post(
                f"{served.pc['control_api']}/identity/sign-ins/{code}/approve",
                json={"mfa": True},
                timeout=10,
            )
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # a real process on the other side
        assert answer.status_code == 200, answer.text
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    assert "Signed in to Partner Center as" in out
    token_file = tmp_path / "pc-token.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    record = FileTokenStore(token_file).record()
    assert (record.grant, record.mfa) == ("device_code", True)
    assert str(FileTokenStore(token_file).load()) not in out + err


def test_browser_sign_in_without_mfa_is_refused_through_the_command(
    served: Served, tmp_path: Path
) -> None:
    proc = _start(_config(served, tmp_path), "--no-browser")
    try:
        _line_with(proc, "Open this URL")
        url = _line_with(proc, "/oauth2/v2.0/authorize?")
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200, page.text
        answer = httpx.post(
            f"{served.pc['control_api']}/identity/sign-ins/{page.headers['x-sandbox-sign-in']}"
            "/approve",
            json={"mfa": False},
            timeout=10,
        )
        redirect = answer.json()["redirect"]
        landing = httpx.post(redirect["url"], data=redirect["form"], timeout=10)
        assert landing.status_code == 200
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out + err
    assert "without multi-factor authentication" in err
    assert "Nothing was stored" in err
    assert not (tmp_path / "pc-token.json").exists()


def test_keys_from_cosell_pass_cosell_check_once_uploaded(served: Served, tmp_path: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "cosell.cli", "salesforce", "keys", "--out", str(tmp_path / "k")],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    data = served.settings_data()
    data["salesforce"]["private_key_file"] = str(tmp_path / "k" / "cosell-jwt-private-key.pem")
    config = write_settings(tmp_path / "cosell.toml", data)
    upload = f"{served.sf['base_url']}/control/identity/certificate"
    original = Path(served.sf["certificate_path"]).read_bytes()
    certificate = (tmp_path / "k" / "cosell-jwt-certificate.crt").read_bytes()
    try:
        assert httpx.put(upload, content=certificate, timeout=10).status_code == 200
        checked = subprocess.run(
            [sys.executable, "-m", "cosell.cli", "check", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
    finally:  # the other tests sign in with the sandbox's own key
        assert httpx.put(upload, content=original, timeout=10).status_code == 200
    lines = checked.stdout.splitlines()
    assert any(line.startswith("✓ Salesforce: signed in") for line in lines), checked.stdout
    assert "✓ Sign-in: Salesforce: jwt" in lines
