"""`cosell-sandbox ...` (and `cosell sandbox ...`): run the local emulators of Partner Center and Salesforce.

`partner-center` and `salesforce` run one emulator each, with every flag that emulator has, and
print one line of JSON with its URLs and working credentials. `cosell sandbox` offers the same
two commands (cosell loads this module when such a command is run) beside `cosell sandbox up`,
both in one process, which lives in cosell because it also writes cosell's settings, which the
sandboxes must not know.
"""

from __future__ import annotations

import typer

from cosell_sandbox.partnercenter.command import partner_center_command
from cosell_sandbox.salesforce.command import salesforce_command

sandbox_app = typer.Typer(
    name="cosell-sandbox",
    help="Run local emulators of Partner Center and Salesforce, for development, tests and demos.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sandbox_app.command("partner-center")(partner_center_command)
sandbox_app.command("salesforce")(salesforce_command)


def main() -> None:
    """Entry point of the `cosell-sandbox` console script."""
    sandbox_app()
