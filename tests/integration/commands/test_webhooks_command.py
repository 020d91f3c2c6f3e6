"""`cosell webhooks register|show|test` against the Partner Center sandbox served on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from commands_kit import Served, write_settings
from typer.testing import CliRunner

from cosell.cli import app
from cosell.clock import ManualClock
from cosell.commands.webhooks import DEFAULT_EVENTS, REFERRAL_EVENTS, run_test
from cosell.config import Settings
from cosell_sandbox.serving import listen

runner = CliRunner()


def _cosell(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _registration(served: Served) -> httpx.Response:
    info = served.pc
    token = httpx.post(
        info["token_endpoint"],
        data={
            "grant_type": "client_credentials",
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "resource": "https://api.partnercenter.microsoft.com",
        },
        timeout=10,
    ).json()["access_token"]
    return httpx.get(
        f"{info['webhooks_api']}/registration",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def _free_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    listener = listen(0)
    port = listener.port
    listener.sock.close()
    return f"http://127.0.0.1:{port}/webhooks/partner-center"


def test_register_new_then_exists_then_overwrite(served: Served) -> None:
    served.delete_registration()
    config = str(served.config)

    status, output = _cosell(
        "webhooks", "register", "--url", "https://cosell.example.com/hooks", "--config", config
    )
    assert status == 0, output
    assert "Registered" in output
    assert "https://cosell.example.com/hooks" in output
    body = _registration(served).json()
    assert body["WebhookUrl"] == "https://cosell.example.com/hooks"
    assert tuple(body["WebhookEvents"]) == DEFAULT_EVENTS

    status, output = _cosell(
        "webhooks", "register", "--url", "https://other.example.com/hooks", "--config", config
    )
    assert status == 1
    assert "already exists" in output
    assert "--overwrite" in output
    assert "https://cosell.example.com/hooks" in output  # the existing one is shown
    assert _registration(served).json()["WebhookUrl"] == "https://cosell.example.com/hooks"

    status, output = _cosell(
        "webhooks",
        "register",
        "--url",
        "https://other.example.com/hooks",
        "--events",
        "referral-created,referral-updated",
        "--overwrite",
        "--config",
        config,
    )
    assert status == 0, output
    assert "Replaced" in output
    body = _registration(served).json()
    assert body["WebhookUrl"] == "https://other.example.com/hooks"
    assert body["WebhookEvents"] == ["referral-created", "referral-updated"]


def test_register_defaults_to_the_public_url(served: Served, tmp_path: Path) -> None:
    served.delete_registration()
    data = served.settings_data()
    data.setdefault("server", {})["public_url"] = "https://sync.example.com/webhooks/partner-center"
    config = write_settings(tmp_path / "cosell.toml", data)
    status, output = _cosell("webhooks", "register", "--config", str(config))
    assert status == 0, output
    assert _registration(served).json()["WebhookUrl"] == (
        "https://sync.example.com/webhooks/partner-center"
    )


def test_register_without_any_url_says_what_to_do(served: Served) -> None:
    status, output = _cosell("webhooks", "register", "--config", str(served.config))
    assert status == 1
    assert "--url" in output
    assert "public_url" in output


def test_show_none_then_one(served: Served) -> None:
    served.delete_registration()
    status, output = _cosell("webhooks", "show", "--config", str(served.config))
    assert status == 0, output
    assert "No webhook registration" in output
    assert "cosell webhooks register" in output

    _cosell(
        "webhooks", "register", "--url", "https://a.example.com/h", "--config", str(served.config)
    )
    status, output = _cosell("webhooks", "show", "--config", str(served.config))
    assert status == 0, output
    assert "https://a.example.com/h" in output
    for event in REFERRAL_EVENTS:
        assert event in output


def test_test_prints_each_result_and_then_the_throttle(served: Served, receiver: str) -> None:
    served.delete_registration()
    config = str(served.config)
    status, output = _cosell("webhooks", "register", "--url", receiver, "--config", config)
    assert status == 0, output

    status, output = _cosell("webhooks", "test", "--config", config)
    assert status == 0, output
    assert "attempt 1: responseCode OK [ok]" in output
    assert "received the validation event" in output

    _cosell("webhooks", "register", "--url", _free_url(), "--overwrite", "--config", config)
    status, output = _cosell("webhooks", "test", "--config", config)
    assert status == 1
    assert "attempt 1:" in output
    assert "[FAILED]" in output
    assert "could not reach the URL" in output

    status, output = _cosell("webhooks", "test", "--config", config)  # the third in a minute
    assert status == 1
    assert "2 validation events per minute" in output
    assert "try again in" in output
    assert "seconds" in output


def test_test_without_test_created_says_how_to_add_it(served: Served) -> None:
    served.delete_registration()
    config = str(served.config)
    _cosell(
        "webhooks",
        "register",
        "--url",
        "https://a.example.com/h",
        "--events",
        "referral-created",
        "--config",
        config,
    )
    status, output = _cosell("webhooks", "test", "--config", config)
    assert status == 1
    assert "test-created" in output
    assert "--overwrite" in output


def test_test_gives_up_after_its_wait_with_a_clear_message(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No result in time: polls on the injected clock, bounded, then says what to do."""
    from cosell.partnercenter.webhooks import ValidationResult, WebhooksClient

    served.delete_registration()
    _cosell(
        "webhooks", "register", "--url", "https://a.example.com/h", "--config", str(served.config)
    )
    polls: list[str] = []

    async def queued(self: WebhooksClient, correlation_id: str) -> ValidationResult:
        polls.append(correlation_id)
        return ValidationResult.model_validate(
            {"correlationId": correlation_id, "status": "queued"}
        )

    async def sent(self: WebhooksClient) -> str:
        return "1f0c9a52-0000-4000-8000-000000000001"

    monkeypatch.setattr(WebhooksClient, "validation_result", queued)
    monkeypatch.setattr(WebhooksClient, "send_validation_event", sent)
    wait = 5.0
    clock = ManualClock()
    lines: list[str] = []
    settings = Settings.load(served.config)
    status = asyncio.run(run_test(settings, echo=lines.append, wait_seconds=wait, clock=clock))
    assert status == 1
    assert sum(clock.sleeps) == pytest.approx(wait)
    assert len(polls) == len(clock.sleeps) == 5  # 0.2 + 0.5 + 1 + 2 + 1.3
    assert "no delivery result after 5 seconds" in lines[-1]


def test_incomplete_settings_say_which_keys_to_set(tmp_path: Path) -> None:
    config = tmp_path / "cosell.toml"
    config.write_text("[partner_center]\n", encoding="utf-8")
    status, output = _cosell("webhooks", "show", "--config", str(config))
    assert status == 1
    assert "partner_center.tenant_id, partner_center.client_id" in output
    assert "COSELL_PARTNER_CENTER__" in output


def test_a_bad_secret_is_reported_without_the_secret(served: Served, tmp_path: Path) -> None:
    data = served.settings_data()
    data["partner_center"]["client_secret"] = "wrong-secret-7"
    config = write_settings(tmp_path / "cosell.toml", data)
    status, output = _cosell("webhooks", "show", "--config", str(config))
    assert status == 1
    assert "client secret was rejected" in output
    assert "wrong-secret-7" not in output
