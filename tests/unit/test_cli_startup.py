"""The CLI starts without its heavy modules, and without the sandboxes when they are missing."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosell.cli import app

runner = CliRunner()


# What `import cosell.cli` must not load: each is only needed once a command runs.
HEAVY = ("cosell_sandbox", "fastapi", "dbos", "sqlalchemy", "alembic", "msal", "cosell.sync")


def test_importing_the_cli_loads_no_heavy_module() -> None:
    probe = f"import sys, cosell.cli; print(sorted(n for n in {HEAVY!r} if n in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


@pytest.fixture
def no_sandboxes(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if cosell-sandbox were not installed (`None` in sys.modules stops its import)."""
    for name in [name for name in sys.modules if name.startswith("cosell_sandbox.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cosell_sandbox", None)


@pytest.mark.usefixtures("no_sandboxes")
@pytest.mark.parametrize(
    "command",
    [["demo"], ["sandbox", "up"], ["sandbox", "salesforce"], ["sandbox", "partner-center"]],
)
def test_a_command_that_needs_the_sandboxes_says_how_to_install_them(command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 1
    assert f"Error: `cosell {' '.join(command)}` needs the local sandboxes" in result.output
    assert "pip install -e ./sandbox" in result.output


@pytest.mark.usefixtures("no_sandboxes")
def test_without_the_sandboxes_the_sandbox_group_lists_up_alone() -> None:
    result = runner.invoke(app, ["sandbox", "--help"])
    assert result.exit_code == 0, result.output
    assert " up " in result.output
    assert "salesforce" not in result.output


def test_the_sandbox_group_lists_the_emulators_and_up() -> None:
    result = runner.invoke(app, ["sandbox", "--help"])
    assert result.exit_code == 0, result.output
    for command in ("partner-center", "salesforce", "up"):
        assert command in result.output


def _loaded(probe: str, names: tuple[str, ...]) -> str:
    """Which of `names` are in sys.modules after running `probe` in a fresh interpreter."""
    script = f"{probe}\nimport sys; print(sorted(n for n in {names!r} if n in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.strip()


# What the settings must not load: the API clients' libraries, needed only to build a client.
CLIENT_LIBRARIES = ("msal", "httpx", "cryptography", "jwt", "sqlalchemy", "alembic")


def test_importing_the_settings_loads_no_client_library() -> None:
    assert _loaded("import cosell.config", CLIENT_LIBRARIES) == "[]"


def test_importing_the_store_loads_no_migrations_models_or_other_dialect() -> None:
    heavy = ("alembic", "cosell.partnercenter.models", "sqlalchemy.dialects.postgresql")
    assert _loaded("import cosell.store", heavy) == "[]"


def test_checking_a_stores_schema_without_migrating_loads_no_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cosell.db'}"
    clock = "from cosell.clock import SystemClock; from cosell.store import Store"
    subprocess.run(
        [sys.executable, "-c", f"{clock}; Store.open({url!r}, clock=SystemClock()).close()"],
        check=True,
        timeout=60,
    )
    probe = f"{clock}; Store.open({url!r}, clock=SystemClock(), migrate=False).close()"
    assert _loaded(probe, ("alembic",)) == "[]"
