"""No secret in any output: commands run as a user runs them, working and failing.

The sandboxes' credentials are moved out of the settings file into `*_file` secrets, the
environment and the token files; cosell then syncs, reports, checks and signs in, and, once
the sign-ins are revoked and a secret is wrong, does the same again failing. Every byte those
processes print (stdout, stderr, with `COSELL_SERVER__LOG_LEVEL`-independent warnings) and
every message they store on records (`status --json`, `audit --json`) is searched for every
secret: none may appear.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx

from cosell.tokenstore import FileTokenStore


def cosell(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cosell.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,  # a bound, not an expectation
        check=False,
        cwd=cwd,
        env={**os.environ, **env},
    )


def _toml(data: dict[str, dict[str, object]]) -> str:
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def test_no_secret_reaches_any_output_of_a_working_and_a_failing_run(tmp_path: Path) -> None:
    served_config = tmp_path / "served.toml"
    command = [sys.executable, "-m", "cosell.cli", "sandbox", "up", "--json", "--seed", "5"]
    command += ["--pc-port", "0", "--sf-port", "0", "--write-config", str(served_config)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    ) as proc:
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            pc, sf = info["partner_center"], info["salesforce"]
            data = tomllib.loads(served_config.read_text("utf-8"))
            secrets = {
                "pc client secret": pc["client_secret"],
                "pc password": pc["password"],
                "pc refresh token": pc["refresh_token"],
                "sf consumer secret": sf["consumer_secret"],
                "sf password": sf["password"],
                "sf security token": sf["security_token"],
                "sf refresh token": sf["refresh_token"],
            }
            pem = Path(sf["private_key_path"]).read_text("utf-8")
            secrets |= {
                f"private key line {n}": line
                for n, line in enumerate(pem.splitlines())
                if line and not line.startswith("-----")
            }
            # Secrets out of the file: files (as Kubernetes mounts them), the environment, and
            # the token files `cosell connect` writes.
            (tmp_path / "pc-secret").write_text(pc["client_secret"], encoding="utf-8")
            (tmp_path / "sf-secret").write_text(sf["consumer_secret"], encoding="utf-8")
            pc_settings = data["partner_center"]
            for key in ("client_secret", "refresh_token", "password"):
                pc_settings.pop(key, None)
            pc_settings["client_secret_file"] = str(tmp_path / "pc-secret")
            pc_settings["refresh_token_file"] = str(tmp_path / "pc-token.json")
            FileTokenStore(tmp_path / "pc-token.json").connect(
                pc["refresh_token"], grant="device_code", mfa=True, user=pc["username"]
            )
            sf_settings = data["salesforce"]
            for key in ("consumer_secret", "password", "security_token", "refresh_token"):
                sf_settings.pop(key, None)
            sf_settings["auth"] = "refresh_token"
            sf_settings["refresh_token_file"] = str(tmp_path / "sf-token.json")
            FileTokenStore(tmp_path / "sf-token.json").connect(
                sf["refresh_token"], grant="web_server", mfa=None, user=sf["username"]
            )
            config = tmp_path / "cosell.toml"
            config.write_text(_toml(data), encoding="utf-8")
            env = {"COSELL_SALESFORCE__CONSUMER_SECRET_FILE": str(tmp_path / "sf-secret")}

            incoming = httpx.post(
                f"{pc['control_api']}/referrals/incoming",
                json={"kind": "co-sell", "name": "Fabrikam - Copilot rollout"},
                timeout=10,
            )
            assert incoming.status_code in (200, 201), incoming.text
            referral_id = incoming.json()["id"]
            outputs: list[str] = []

            def run(*args: str, ok: bool) -> None:
                result = cosell(*args, "--config", str(config), cwd=tmp_path, env=env)
                outputs.append(result.stdout + result.stderr)
                assert (result.returncode == 0) == ok, result.stdout + result.stderr

            # The working run.
            run("sync", "--full", ok=True)
            run("status", "--json", ok=True)
            run("audit", referral_id, "--json", ok=True)
            run("check", ok=False)  # no webhook registration here: the rest is all green
            assert "Sign-in: Partner Center: refresh_token (device_code)" in outputs[-1]

            # The failing run: both sign-ins revoked, then a wrong secret.
            secrets["pc rotated refresh token"] = str(
                FileTokenStore(tmp_path / "pc-token.json").load()
            )
            revoked = httpx.post(f"{pc['control_api']}/identity/revoke-refresh-tokens", timeout=10)
            assert revoked.status_code == 200
            revoke = httpx.post(
                f"{sf['login_url']}/services/oauth2/revoke",
                data={"token": sf["refresh_token"]},
                timeout=10,
            )
            assert revoke.status_code == 200
            edited = httpx.post(
                f"{pc['control_api']}/referrals/incoming",
                json={"kind": "co-sell", "name": "Contoso - failing run"},
                timeout=10,
            )
            assert edited.status_code in (200, 201)
            run("sync", "--full", ok=False)
            run("check", ok=False)
            assert "sign-in expired: run cosell connect" in "".join(outputs[-2:])
            run("status", "--json", ok=True)
            run("audit", referral_id, "--json", ok=True)
            (tmp_path / "pc-secret").write_text("not-the-secret", encoding="utf-8")
            run("check", ok=False)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)

    everything = "\n".join(outputs)
    leaked = [name for name, value in secrets.items() if value and value in everything]
    assert leaked == []
