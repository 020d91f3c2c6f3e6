"""`[server]` settings, the sandbox's, and what `cosell serve` says when it cannot start."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "partnercenter"))

from pc_fakes import CertificateKit, der, pem

from cosell.cli import app
from cosell.commands.serve import bind, load_trusted_roots
from cosell.config import ConfigError, Settings
from cosell.partnercenter.defaults import MAX_BODY_BYTES, MICROSOFT_CERTIFICATE_URL_PREFIX
from cosell_sandbox.partnercenter.app import PartnerCenterSandbox
from cosell_sandbox.salesforce.app import SalesforceSandbox
from cosell_sandbox.salesforce.app import SandboxOptions as SfOptions


def test_defaults_are_safe_for_production() -> None:
    server = Settings().server
    assert (server.host, server.port, server.webhook_path) == (
        "127.0.0.1",
        8080,
        "/webhooks/partner-center",
    )
    assert server.allowed_certificate_urls == (MICROSOFT_CERTIFICATE_URL_PREFIX,)
    assert server.trusted_ca_file is None
    assert server.trusted_ca_url is None
    assert server.max_body_bytes == MAX_BODY_BYTES
    assert server.log_format == "json"


def test_environment_overrides_with_comma_separated_lists_and_bad_values_are_named(
    tmp_path: Path,
) -> None:
    settings = Settings.load(
        environ={
            "COSELL_SERVER__ALLOWED_CERTIFICATE_URLS": "https://a.example/cert/, https://b.example/c/",
            "COSELL_SERVER__PUBLIC_URL": "https://cosell.example.com/webhooks/partner-center",
        }
    )
    assert settings.server.allowed_certificate_urls == (
        "https://a.example/cert/",
        "https://b.example/c/",
    )
    file = tmp_path / "cosell.toml"
    file.write_text(
        '[server]\nwebhook_path = "hooks"\nmax_body_bytes = 5000000\nlog_format = "xml"\n'
    )
    with pytest.raises(ConfigError) as caught:
        Settings.load(file, environ={})
    message = str(caught.value)
    assert "server.webhook_path" in message
    assert "server.max_body_bytes" in message
    assert "server.log_format" in message


def test_for_sandboxes_allows_the_sandbox_certificates_and_trusts_its_ca(tmp_path: Path) -> None:
    pc = PartnerCenterSandbox(base_url="http://127.0.0.1:9")
    sf = SalesforceSandbox(base_url="http://127.0.0.1:10", options=SfOptions(key_dir=tmp_path))
    try:
        settings = Settings.for_sandboxes(pc.info(), sf.info(), store_url="sqlite:///x.db")
    finally:
        sf.close()
    assert settings.server.allowed_certificate_urls == ("http://127.0.0.1:9/cert/",)
    assert settings.server.trusted_ca_url == pc.info()["ca_certificate_url"]
    assert pc.info()["certificate_url"].startswith(settings.server.allowed_certificate_urls[0])


def test_trusted_roots_come_from_the_file_or_the_url_else_certifi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = CertificateKit()
    assert load_trusted_roots(Settings()) is None
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(pem(kit.ca) + pem(kit.intermediate))
    settings = Settings.model_validate({"server": {"trusted_ca_file": str(bundle)}})
    assert load_trusted_roots(settings) == [kit.ca, kit.intermediate]
    bundle.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="no readable certificate"):
        load_trusted_roots(settings)
    missing = Settings.model_validate({"server": {"trusted_ca_file": str(tmp_path / "nope.pem")}})
    with pytest.raises(ConfigError, match="cannot read"):
        load_trusted_roots(missing)

    def fake_get(url: str, **_: object) -> httpx.Response:
        return httpx.Response(200, content=der(kit.ca))

    monkeypatch.setattr(httpx, "get", fake_get)
    by_url = Settings.model_validate(
        {"server": {"trusted_ca_url": "http://127.0.0.1:9/cert/ca.cer"}}
    )
    assert load_trusted_roots(by_url) == [kit.ca]


def test_a_taken_port_is_reported_with_what_to_do() -> None:
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(
            OSError, match=f"cannot listen on 127.0.0.1:{port}.*pick another --port"
        ):
            bind("127.0.0.1", port)
        result = CliRunner().invoke(app, ["serve", "--port", str(port)], catch_exceptions=False)
        assert result.exit_code == 1
        assert "pick another --port" in result.output
    finally:
        taken.close()
    assert isinstance(taken, socket.socket)


def test_bad_settings_exit_1_with_the_problem(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 1
    assert "no such settings file" in result.output


def test_a_service_that_cannot_start_exits_1_with_what_to_do(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "cosell.toml").write_text(
        '[store]\nurl = "sqlite:///cosell.db"\n\n'
        '[server]\ntrusted_ca_url = "http://127.0.0.1:9/cert/sandbox-root-ca.cer"\n'
    )
    src = Path(__file__).resolve().parents[3] / "src"
    result = subprocess.run(
        [sys.executable, "-m", "cosell.cli", "serve", "--config", "cosell.toml", "--port", "0"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "server.trusted_ca_url: cannot download" in result.stderr
    assert "is the sandbox running?" in result.stderr
    assert result.stdout == ""  # no startup line: it never listened for callbacks


def test_an_engine_that_cannot_start_is_reported_with_its_reason(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "cosell.toml").write_text(
        '[partner_center]\ntenant_id = "t"\nclient_id = "c"\nrefresh_token = "r"\n\n'
        '[salesforce]\nauth = "client_credentials"\nconsumer_key = "k"\nconsumer_secret = "s"\n'
        'token_url = "https://example.my.salesforce.com"\n\n'
        '[store]\nurl = "sqlite:///cosell.db"\n\n[sync]\npoll_interval_seconds = 7\n'
    )
    src = Path(__file__).resolve().parents[3] / "src"
    result = subprocess.run(
        [sys.executable, "-m", "cosell.cli", "serve", "--config", "cosell.toml", "--port", "0"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Error: poll_interval_seconds = 7 cannot be scheduled evenly" in result.stderr
    assert result.stdout == ""
