"""`cosell salesforce metadata --out DIR [--force]`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cosell.cli import app
from cosell.salesforce.metadata import project_files

runner = CliRunner()


def test_metadata_writes_the_project_and_prints_the_deploy_commands(tmp_path: Path) -> None:
    out = tmp_path / "cosell-metadata"
    result = runner.invoke(app, ["salesforce", "metadata", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for relative, _ in project_files():
        assert (out / relative).is_file()
        assert relative in result.output
    assert f"Wrote {len(project_files())} files to {out}" in result.output
    assert str(out) in result.output.split("Deploy with the Salesforce CLI")[1]
    sandbox = "sf org login web --instance-url https://test.salesforce.com --alias cosell-sandbox"
    production = "sf org login web --instance-url https://login.salesforce.com"
    assert sandbox in result.output
    assert production in result.output
    assert result.output.index(sandbox) < result.output.index(production)
    assert (
        "sf project deploy start --source-dir force-app --target-org cosell-sandbox"
        in result.output
    )
    assert (
        "sf org assign permset --name Cosell_Integration --target-org cosell-sandbox "
        "--on-behalf-of <integration user>" in result.output
    )


def test_metadata_refuses_a_non_empty_directory_without_force(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["salesforce", "metadata", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "is not empty" in result.output
    assert "--force" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_metadata_with_force_writes_into_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["salesforce", "metadata", "--out", str(tmp_path), "--force"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "sfdx-project.json").is_file()
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_metadata_needs_out() -> None:
    result = runner.invoke(app, ["salesforce", "metadata"])
    assert result.exit_code == 2
    assert "--out" in result.output


def test_salesforce_group_is_listed_in_help() -> None:
    result = runner.invoke(app, ["salesforce", "--help"])
    assert result.exit_code == 0
    assert "metadata" in result.output
