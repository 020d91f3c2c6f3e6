"""`cosell sandbox partner-center`: startup JSON, serving on loopback, and its usage errors."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cosell.cli import app
from cosell_sandbox.partnercenter import command
from cosell_sandbox.serving import Listener

runner = CliRunner()
INFO_KEYS = {
    "sandbox",
    "base_url",
    "referrals_api",
    "webhooks_api",
    "token_endpoint",
    "authority",
    "certificate_url",
    "ca_certificate_url",
    "control_api",
    "tenant_id",
    "client_id",
    "client_secret",
    "refresh_token",
    "username",
    "password",
}


def test_serves_on_loopback_and_prints_one_json_line(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cosell.cli import main; main()",
            "sandbox",
            "partner-center",
            "--port",
            "0",
            "--json",
            "--seed",
            "5",
            "--data",
            str(tmp_path / "pc.sqlite"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "the sandbox printed nothing within 60 s"
        info = json.loads(process.stdout.readline())
        assert set(info) >= INFO_KEYS
        assert info["base_url"].startswith("http://127.0.0.1:")
        with httpx.Client(base_url=info["base_url"], timeout=10) as client:
            token = client.post(
                info["token_endpoint"],
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": info["refresh_token"],
                    "client_id": info["client_id"],
                    "client_secret": info["client_secret"],
                    "resource": "https://api.partner.microsoft.com",
                },
            )
            assert token.status_code == 200, token.text
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            listed = client.get(info["referrals_api"], headers=headers)
            assert listed.status_code == 200
            assert listed.json()["value"] == []
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert (tmp_path / "pc.sqlite").exists()


def test_without_json_a_hint_follows_the_json_line(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Sequence[tuple[Any, Listener]]] = []

    def fake_run_forever(apps: Sequence[tuple[Any, Listener]]) -> None:
        served.append(apps)
        for _, listener in apps:
            listener.sock.close()

    monkeypatch.setattr(command, "run_forever", fake_run_forever)
    result = runner.invoke(app, ["sandbox", "partner-center", "--port", "0", "--latency", "0.1"])
    assert result.exit_code == 0, result.output
    first, *rest = result.stdout.splitlines()
    info = json.loads(first)
    assert set(info) >= INFO_KEYS
    hint = "\n".join(rest)
    assert f"Partner Center sandbox on {info['base_url']}" in hint
    assert info["referrals_api"] in hint
    assert "Ctrl-C" in hint
    assert len(served) == 1
    assert served[0][0][1].base_url == info["base_url"]


def test_json_prints_only_the_json_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def close_instead_of_serving(apps: Sequence[tuple[Any, Listener]]) -> None:
        for _, listener in apps:
            listener.sock.close()

    monkeypatch.setattr(command, "run_forever", close_instead_of_serving)
    result = runner.invoke(app, ["sandbox", "partner-center", "--port", "0", "--json"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["sandbox"] == "partner-center"


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["sandbox", "partner-center", "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "pick another --port" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--error-429", "2"], "error_429_fraction must be between 0 and 1"),
        (["--page-size", "0"], "page_size must be between 1 and 1000"),
        (["--throttle-rate", "0"], "throttle_rate_per_second must be above 0"),
        (["--webhook-drop", "1.5"], "webhook drop must be between 0 and 1"),
        (["--token-lifetime", "0"], "token_lifetime_seconds must be above 0"),
    ],
)
def test_bad_flags_are_usage_errors(flags: list[str], message: str) -> None:
    result = runner.invoke(app, ["sandbox", "partner-center", "--port", "0", *flags])
    assert result.exit_code == 2
    assert message in result.stderr


def test_an_unusable_data_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db"
    path.write_bytes(b"\x00garbage" * 500)
    result = runner.invoke(app, ["sandbox", "partner-center", "--port", "0", "--data", str(path)])
    assert result.exit_code == 2
    assert "as the sandbox's --data file" in result.stderr
