"""Command implementations of the `cosell` CLI, one module per command group.

The options several commands share are declared once here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import structlog

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


SANDBOX_PACKAGE = "cosell_sandbox"
INSTALL_SANDBOXES = (
    "the sandboxes are not installed. They are the cosell-sandbox distribution in cosell's "
    "repository: from a checkout of it, run `pip install -e ./sandbox` (or `pip install -e . "
    "-e ./sandbox` to install both)."
)


def sandboxes_installed() -> bool:
    """Whether the sandboxes (`cosell_sandbox`) can be imported; imports nothing."""
    return importlib.util.find_spec(SANDBOX_PACKAGE) is not None


def require_sandboxes(command: str) -> None:
    """Exit with status 1 and a message saying how to install the sandboxes if they are missing.

    Args:
        command: the command that needs them, for the message (`cosell demo`).
    """
    if not sandboxes_installed():
        typer.echo(
            f"Error: `{command}` needs the local sandboxes, but {INSTALL_SANDBOXES}", err=True
        )
        raise typer.Exit(code=1)


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    import structlog

    return structlog.PrintLogger(sys.stderr)  # the stderr of the moment (test runners swap it)


@contextlib.contextmanager
def quiet_client_logs() -> Iterator[None]:
    """Keep the clients' info lines (sign-ins) out of a command's output; warnings go to stderr.

    structlog's default prints to stdout, which is the command's report (`--json` feeds
    scripts). Does nothing when the application configured structlog itself (`cosell serve`).
    """
    import structlog

    if structlog.is_configured():
        yield
        return
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=_stderr_logger,
    )
    try:
        yield
    finally:
        structlog.reset_defaults()
