"""`cosell db upgrade`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosell.cli import app
from cosell.clock import ManualClock
from cosell.store import Store
from cosell.store.schema import head_revision

runner = CliRunner()


def test_upgrade_an_empty_database_then_again(empty_url: str) -> None:
    first = runner.invoke(app, ["db", "upgrade", "--url", empty_url])
    assert first.exit_code == 0, first.output
    assert f"is at revision {head_revision()} (upgraded from an empty database)." in first.output
    again = runner.invoke(app, ["db", "upgrade", "--url", empty_url])
    assert again.exit_code == 0, again.output
    assert f"is at revision {head_revision()} (up to date)." in again.output
    with Store.open(empty_url, clock=ManualClock(), migrate=False) as store:
        assert store.links() == []


def test_upgrade_defaults_to_cosell_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COSELL_STORE__URL", raising=False)
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("sqlite:///./cosell.db is at revision")
    assert (tmp_path / "cosell.db").is_file()


def test_upgrade_reads_the_url_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COSELL_STORE__URL", raising=False)
    settings = tmp_path / "elsewhere.toml"
    settings.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "from-file.db"}"\n')
    result = runner.invoke(app, ["db", "upgrade", "--config", str(settings)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-file.db").is_file()
    monkeypatch.setenv("COSELL_STORE__URL", f"sqlite:///{tmp_path / 'from-env.db'}")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-env.db").is_file()
    assert not (tmp_path / "cosell.db").exists()


def test_upgrade_with_a_missing_settings_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 1
    assert "no such settings file" in result.output


def test_upgrade_with_a_bad_url_says_what_to_do() -> None:
    result = runner.invoke(app, ["db", "upgrade", "--url", "mysql://admin:hunter2@db/cosell"])
    assert result.exit_code == 1
    assert (
        "cosell stores its state in SQLite (sqlite:///./cosell.db) or PostgreSQL" in result.output
    )
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output


def test_upgrade_of_an_unreachable_server_says_what_to_do() -> None:
    # Port 1 on the loopback: nothing listens there, the connection is refused at once.
    result = runner.invoke(
        app, ["db", "upgrade", "--url", "postgresql://cosell:hunter2@127.0.0.1:1/cosell"]
    )
    assert result.exit_code == 1
    assert (
        "cannot connect to the PostgreSQL store 'postgresql+psycopg://cosell:***@127.0.0.1:1/cosell'"
        in result.output
    )
    assert "Check that the server is running" in result.output
    assert "hunter2" not in result.output


def test_db_is_listed_in_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "db" in result.output
    result = runner.invoke(app, ["db", "--help"])
    assert "upgrade" in result.output
