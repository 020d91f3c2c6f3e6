"""`cosell console set-password`: the users file it writes and its refusals."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from cosell.cli import app
from cosell.server.console.auth import Role, read_users, verify_password

runner = CliRunner()


def test_set_password_writes_a_private_users_file_with_a_scrypt_hash(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    result = runner.invoke(
        app,
        [
            "console",
            "set-password",
            "--users-file",
            str(path),
            "--password-stdin",
            "--role",
            "viewer",
        ],
        input="a long enough password\n",
    )
    assert result.exit_code == 0, result.output
    assert f"Created console user admin (viewer) in {path}." in result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "a long enough password" not in path.read_text()
    users = read_users(path)
    assert users is not None
    admin = users.users["admin"]
    assert admin.role is Role.VIEWER
    assert admin.password_hash.startswith("scrypt$32768$8$1$")
    assert verify_password("a long enough password", admin.password_hash)
    assert not verify_password("another password", admin.password_hash)
    again = runner.invoke(
        app,
        ["console", "set-password", "--users-file", str(path), "--password-stdin"],
        input="the second password\n",
    )
    assert "Updated console user admin (operator)" in again.output
    after = read_users(path)
    assert after is not None
    assert after.session_secret == users.session_secret
    assert json.loads(path.read_text())["users"]["admin"]["role"] == "operator"


def test_set_password_refuses_a_short_password_and_an_unknown_role(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    short = runner.invoke(
        app,
        ["console", "set-password", "--users-file", str(path), "--password-stdin"],
        input="short\n",
    )
    assert short.exit_code == 1
    assert "at least 12 characters" in short.output
    role = runner.invoke(
        app, ["console", "set-password", "--users-file", str(path), "--role", "root"]
    )
    assert role.exit_code == 1
    assert "--role is operator or viewer, not 'root'" in role.output
    assert not path.exists()


def test_the_demo_prints_the_console_url_and_how_to_get_a_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from cosell.commands import story
    from cosell.config import Settings

    monkeypatch.chdir(tmp_path)
    settings = Settings()
    printed = Console(record=True, width=200)
    side = SimpleNamespace(base_url="http://127.0.0.1:1")
    service = SimpleNamespace(base_url="http://127.0.0.1:2")
    story._print_urls(printed, side, side, service, settings)
    text = printed.export_text()
    assert "cosell console          http://127.0.0.1:2/console/" in text
    assert "run `cosell console set-password`" in text
    set_password_file = tmp_path / settings.server.console_users_file
    set_password_file.write_text("{}")
    printed = Console(record=True, width=200)
    story._print_urls(printed, side, side, service, settings)
    assert "set-password" not in printed.export_text()
