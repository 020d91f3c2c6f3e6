"""`cosell console set-password [--user NAME] [--role operator|viewer] [--password-stdin]`.

Creates or updates a user of the operations console (served at `/console` by `cosell serve`)
in the users file, `[server] console_users_file` (default `cosell-console.json` in the working
directory), or `--users-file`. The password is asked twice without echo, or read from standard
input with `--password-stdin` (for scripts). Setting a password signs that user's sessions out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cosell.commands import ConfigOption

console_app = typer.Typer(
    help="The operations console served at /console by `cosell serve`: its users.",
    no_args_is_help=True,
)


@console_app.command("set-password")
def set_password(
    user: Annotated[str, typer.Option("--user", help="The user name.")] = "admin",
    role: Annotated[
        str,
        typer.Option("--role", help="operator (reads and acts) or viewer (reads only)."),
    ] = "operator",
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input."),
    ] = False,
    users_file: Annotated[
        Path | None,
        typer.Option(
            "--users-file",
            help="The users file (default: [server] console_users_file in cosell.toml).",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a console user or change their password and role."""
    from cosell.config import ConfigError, Settings
    from cosell.server.console.auth import Role, UsersFileError
    from cosell.server.console.auth import set_password as write

    if role not in {r.value for r in Role}:
        typer.echo(f"Error: --role is operator or viewer, not {role!r}", err=True)
        raise typer.Exit(code=1)
    if users_file is None:
        try:
            users_file = Settings.load(config).server.console_users_file
        except ConfigError as error:
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(code=1) from error
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(f"Password for {user}", hide_input=True, confirmation_prompt=True)
    try:
        new = write(users_file, user, password, Role(role))
    except UsersFileError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    verb = "Created" if new else "Updated"
    typer.echo(f"{verb} console user {user} ({role}) in {users_file}.")
    typer.echo("Sign in at <cosell serve's URL>/console/ (e.g. http://127.0.0.1:8080/console/).")
