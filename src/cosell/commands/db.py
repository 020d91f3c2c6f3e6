"""`cosell db`: the store's database.

`cosell db upgrade` brings the store's schema to this cosell's revision (the same migrations
`cosell serve` and `cosell sync` run on start) and prints the revision it is at. Run it before
starting several workers against a new PostgreSQL database, or to upgrade the schema ahead of a
rolling deploy. The database is `--url` when given, else the settings' `[store] url`
(`cosell.toml`, or the `COSELL_STORE__URL` environment variable), else the SQLite file
`./cosell.db`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cosell.commands import ConfigOption

db_app = typer.Typer(
    help="The store's database: links, snapshots, audit, cursors, inbox.",
    no_args_is_help=True,
)


@db_app.command("upgrade")
def upgrade(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help=(
                "The store's database: sqlite:///path/to/cosell.db or "
                "postgresql://user:password@host:5432/database "
                "(default: [store] url from the settings, else sqlite:///./cosell.db)."
            ),
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Migrate the store's database to this cosell's schema and print its revision."""
    from cosell.config import ConfigError, Settings
    from cosell.store import StoreError
    from cosell.store.schema import upgrade_database

    try:
        if url is None:
            url = Settings.load(config).store.url
        shown, result = upgrade_database(url)
    except (ConfigError, StoreError) as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    if result.before == result.after:
        typer.echo(f"{shown} is at revision {result.after} (up to date).")
    else:
        before = "an empty database" if result.before is None else f"revision {result.before}"
        typer.echo(f"{shown} is at revision {result.after} (upgraded from {before}).")
