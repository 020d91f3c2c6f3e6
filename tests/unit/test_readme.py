"""The README's promises stay true: its commands are the ones the code and CI use."""

from pathlib import Path

from cosell.salesforce.metadata import DEPLOY_INSTRUCTIONS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_deploy_steps_are_the_ones_cosell_prints() -> None:
    commands = [
        line.strip() for line in DEPLOY_INSTRUCTIONS.splitlines() if line.strip().startswith("sf ")
    ]
    assert len(commands) >= 6
    for command in commands:
        assert command in README, f"README lacks the deploy step: {command}"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "```sh\nscripts/test\n```" in README
    assert ci.rstrip().splitlines()[-1] == "scripts/test"
