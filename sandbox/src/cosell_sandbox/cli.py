"""`cosell sandbox ...`: run the local emulators of Partner Center and Salesforce.

`partner-center` and `salesforce` run one emulator each, with every flag that emulator has, and
print one line of JSON with its URLs and working credentials. (`cosell sandbox up`, both in one
process, is registered by `cosell.cli` from `cosell.commands.sandbox`, because it also writes
cosell's settings, which the sandboxes must not know.)
"""

from __future__ import annotations

import typer

from cosell.sandbox.partnercenter.command import partner_center_command
from cosell.sandbox.salesforce.command import salesforce_command

sandbox_app = typer.Typer(
    help="Run local emulators of Partner Center and Salesforce, for development, tests and demos.",
    no_args_is_help=True,
)
sandbox_app.command("partner-center")(partner_center_command)
sandbox_app.command("salesforce")(salesforce_command)
