"""Command implementations of the `cosell` CLI, one module per command group.

The options several commands share are declared once here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The settings file (default: ./cosell.toml, if present).",
        dir_okay=False,
        show_default=False,
    ),
]
"""`--config FILE`: the settings file, as every command that reads settings takes it."""

DealKey = Annotated[
    str,
    typer.Argument(
        help=(
            "referral:<referral id>, salesforce:Opportunity:<record id>, or just the "
            "referral id or the opportunity id."
        ),
        show_default=False,
    ),
]
"""The deal a command is about, as `cosell plan` and `cosell audit` accept it."""
