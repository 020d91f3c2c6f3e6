"""`cosell alerts test [--config FILE]`: send a test alert to every `[alerts]` channel.

Exits 0 when every channel delivered, 1 when one did not (the log says which, by its scheme
and number; never its URL, which holds a secret) or when no channel is set.
"""

from __future__ import annotations

import asyncio

import typer

from cosell.commands import ConfigOption

alerts_app = typer.Typer(
    help="Alerts on changes of sync health (`[alerts]` in cosell.toml).", no_args_is_help=True
)


@alerts_app.command("test")
def send_test(config: ConfigOption = None) -> None:
    """Send a test alert to every channel in `[alerts] urls`."""
    from cosell.config import ConfigError, Settings
    from cosell.server.alerts import INFO, Alert, Alerter, console_url

    try:
        settings = Settings.load(config)
    except ConfigError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from error
    urls = [url.get_secret_value() for url in settings.alerts.urls]
    if not urls:
        typer.echo(
            "Error: no alert channel: set [alerts] urls in cosell.toml (or "
            'COSELL_ALERTS__URLS), e.g. urls = ["json://alerts.example.com/hook"]',
            err=True,
        )
        raise typer.Exit(code=1)
    try:
        alerter = Alerter(urls)
    except ValueError as error:
        typer.echo(f"Error: alerts.urls: {error}", err=True)
        raise typer.Exit(code=1) from error
    link = console_url(settings)
    alert = Alert(
        "test",
        "cosell test alert",
        "This is a test of cosell's alerts: this channel works."
        + (f"\n\nConsole: {link}/" if link else ""),
        INFO,
    )
    delivered = asyncio.run(alerter.send(alert))
    typer.echo(f"{delivered} of {alerter.channels} channel(s) delivered the test alert.")
    if delivered < alerter.channels:
        raise typer.Exit(code=1)
