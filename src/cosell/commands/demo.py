"""`cosell demo`: both sandboxes and the connector in one process, playing a co-sell story.

The story and how it runs are in `cosell.commands.story`, loaded (with the sandboxes, the
service and the store) only when the demo is run, so that `cosell demo --help` and every other
command start quickly and cosell runs without the sandboxes installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import typer

from cosell.commands import require_sandboxes

DEFAULT_STEP_TIMEOUT: Final = 15.0  # seconds a step may take to sync


def demo(
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running",
            help="After the story, keep everything running and print the URLs (Ctrl-C stops).",
        ),
    ] = False,
    step_timeout: Annotated[
        float,
        typer.Option("--step-timeout", help="Seconds each step may take to sync.", min=0.0),
    ] = DEFAULT_STEP_TIMEOUT,
    org_profile: Annotated[
        Path | None,
        typer.Option(
            "--org-profile",
            help="Customise the Salesforce sandbox with this org profile (YAML) and play the "
            "customised-org story, written for sandbox/examples/customised-org.yaml.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="The mapping file cosell syncs with (default: the mapping shipped with "
            "cosell); a customised org needs one that fits it.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Play a co-sell story against both sandboxes in one process; exit 0 when all of it synced."""
    require_sandboxes("cosell demo")
    from cosell.commands.story import play

    if not play(
        keep_running=keep_running,
        step_timeout=step_timeout,
        org_profile=org_profile,
        mapping=mapping,
    ):
        raise typer.Exit(code=1)
