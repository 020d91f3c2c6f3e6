"""The CLI starts without its heavy modules, and without the sandboxes when they are missing."""

import subprocess
import sys

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
