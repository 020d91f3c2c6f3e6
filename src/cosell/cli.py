"""The `cosell` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cosell import __version__
from cosell.commands.alerts import alerts_app
from cosell.commands.audit import audit
from cosell.commands.check import check
from cosell.commands.connect import connect_app
from cosell.commands.console import console_app
from cosell.commands.db import db_app
from cosell.commands.demo import demo
from cosell.commands.init import init
from cosell.commands.mapping import mapping_app
from cosell.commands.pause import pause, resume
from cosell.commands.plan import plan
from cosell.commands.retry import retry
from cosell.commands.sandbox import SandboxGroup, up_command
from cosell.commands.serve import serve
from cosell.commands.status import status
from cosell.commands.sync import sync
from cosell.commands.webhooks import webhooks_app
from cosell.salesforce.metadata import DEPLOY_INSTRUCTIONS, MetadataWriteError, write_project

app = typer.Typer(
    name="cosell",
    help=(
        "Keeps Microsoft Partner Center co-sell referrals and Salesforce opportunities and "
        "leads in sync, both ways, in seconds."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sandbox_app = typer.Typer(
    cls=SandboxGroup,
    help="Run local emulators of Partner Center and Salesforce, for development, tests and demos.",
    no_args_is_help=True,
)
sandbox_app.command("up")(up_command)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(db_app, name="db")
app.add_typer(mapping_app, name="mapping")
app.add_typer(console_app, name="console")
app.add_typer(alerts_app, name="alerts")
app.command("plan")(plan)
app.command("sync")(sync)
app.command("pause")(pause)
app.command("resume")(resume)
app.command("retry")(retry)
app.command("serve")(serve)
app.command("status")(status)
app.command("audit")(audit)
app.add_typer(webhooks_app, name="webhooks")
app.command("init")(init)
app.command("check")(check)
app.add_typer(connect_app, name="connect")
app.command("demo")(demo)

salesforce_app = typer.Typer(
    help="Set up Salesforce for cosell: the custom fields, objects and permission set it needs.",
    no_args_is_help=True,
)
app.add_typer(salesforce_app, name="salesforce")


@salesforce_app.command("metadata")
def _salesforce_metadata(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Directory to write the Salesforce DX project to (created if missing; must be empty).",
            file_okay=False,
            dir_okay=True,
        ),
    ],
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Write into a non-empty directory, overwriting cosell's files."
        ),
    ] = False,
) -> None:
    """Write cosell's Salesforce metadata as a project to deploy with the sf CLI."""
    try:
        written = write_project(out, force=force)
    except MetadataWriteError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"Wrote {len(written)} files to {out}:")
    for path in written:
        typer.echo(f"  {path.relative_to(out).as_posix()}")
    typer.echo("")
    typer.echo(
        DEPLOY_INSTRUCTIONS.replace("the folder cosell wrote", f"the folder cosell wrote ({out})"),
        nl=False,
    )


@salesforce_app.command("keys")
def _salesforce_keys(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Directory to write the JWT private key and certificate to (created if missing).",
            file_okay=False,
            dir_okay=True,
        ),
    ],
) -> None:
    """Make the JWT bearer flow's key pair: a private key for cosell, a certificate for Salesforce."""
    from cosell.clock import SystemClock
    from cosell.salesforce.keys import KeysExistError, write_jwt_keys

    try:
        keys = write_jwt_keys(out, now=SystemClock().now())
    except (KeysExistError, OSError) as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"Wrote the private key {keys.private_key} (mode 0600; keep it secret)")
    typer.echo(f"and the certificate {keys.certificate}.")
    typer.echo(
        "Upload the certificate to the external client app (OAuth settings > Use digital "
        "signatures), then set in cosell.toml:\n"
        "  [salesforce]\n"
        '  auth = "jwt"\n'
        f'  private_key_file = "{keys.private_key}"\n'
        "and run `cosell check` to prove the JWT sign-in works."
    )


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"cosell {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
) -> None:
    """Keeps Partner Center co-sell referrals and Salesforce in sync."""


def main() -> None:
    """Entry point of the `cosell` console script."""
    app()


if __name__ == "__main__":
    main()
