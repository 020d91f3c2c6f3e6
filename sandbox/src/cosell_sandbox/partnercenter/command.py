"""`cosell sandbox partner-center`: serve the Partner Center sandbox on loopback.

The socket is bound first (`serving.listen`), so that port 0 works and the sandbox is built
with the URL it really has; then one line of JSON (`PartnerCenterSandbox.info()`: base URLs and
working credentials) is printed and flushed, followed, without `--json`, by a short hint for
humans. The app is served until Ctrl-C; its lifespan runs webhook delivery and, with `--data`,
saves the state at shutdown. Bad options, a taken port or an unusable data file exit with
status 2 and a message on stderr that says what to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cosell_sandbox.serving import listen, run_forever, usage_error


def partner_center_command(
    port: int = typer.Option(
        8610, "--port", "-p", help="Loopback TCP port to serve on; 0 picks a free port."
    ),
    data: Path | None = typer.Option(  # noqa: B008 - typer reads options from defaults
        None,
        "--data",
        help="SQLite file that keeps referrals, credentials and webhook registration across "
        "restarts (created if missing). Without it the state lives in memory.",
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print only the one line of startup JSON (for scripts)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Make credentials, ids and injected faults reproducible."
    ),
    page_size: int = typer.Option(
        100, "--page-size", help="Referrals per list page when the client sends no $top (1-1000)."
    ),
    token_lifetime: float = typer.Option(
        3600.0, "--token-lifetime", help="Lifetime of issued access tokens, in seconds."
    ),
    latency: float = typer.Option(
        0.0, "--latency", help="Seconds added to every Referrals/Webhooks API call."
    ),
    error_429: float = typer.Option(
        0.0, "--error-429", help="Fraction (0-1) of API calls answered 429 with Retry-After."
    ),
    error_503: float = typer.Option(
        0.0, "--error-503", help="Fraction (0-1) of API calls answered 503 with Retry-After."
    ),
    retry_after: float = typer.Option(
        1.0, "--retry-after", help="Retry-After seconds of injected 429 and 503 answers."
    ),
    throttle_rate: float | None = typer.Option(
        None,
        "--throttle-rate",
        help="Token-bucket throttle: API calls per second before 429s (default: no throttle).",
    ),
    throttle_burst: int = typer.Option(
        0, "--throttle-burst", help="Token-bucket capacity: calls allowed at once (at least 1)."
    ),
    webhook_drop: float = typer.Option(
        0.0, "--webhook-drop", help="Fraction (0-1) of webhook callbacks never delivered."
    ),
    webhook_duplicate: float = typer.Option(
        0.0, "--webhook-duplicate", help="Fraction (0-1) of webhook callbacks delivered twice."
    ),
    webhook_delay: float = typer.Option(
        0.0, "--webhook-delay", help="Seconds every webhook callback waits before delivery."
    ),
    webhook_reorder: float = typer.Option(
        0.0,
        "--webhook-reorder",
        help="Fraction (0-1) of webhook callbacks held back and sent after the next one.",
    ),
) -> None:
    """Run a local emulator of Partner Center's Referrals API, Webhooks API and token endpoint."""
    from cosell_sandbox.partnercenter.app import PartnerCenterSandbox, SandboxOptions
    from cosell_sandbox.partnercenter.events import WebhookFaults
    from cosell_sandbox.partnercenter.faults import ApiFaults
    from cosell_sandbox.partnercenter.persistence import SandboxDataError

    options = SandboxOptions(
        seed=seed,
        token_lifetime_seconds=token_lifetime,
        page_size=page_size,
        data_path=data,
        faults=ApiFaults(
            latency_seconds=latency,
            error_429_fraction=error_429,
            error_503_fraction=error_503,
            retry_after_seconds=retry_after,
            throttle_rate_per_second=throttle_rate,
            throttle_burst=throttle_burst,
        ),
        webhook_faults=WebhookFaults(
            drop=webhook_drop,
            duplicate=webhook_duplicate,
            delay_seconds=webhook_delay,
            reorder=webhook_reorder,
        ),
    )
    try:
        options.validate()
    except ValueError as exc:
        raise usage_error(f"{exc} (see --help)") from None
    try:
        listener = listen(port)
    except OSError as exc:
        raise usage_error(str(exc)) from None
    try:
        sandbox = PartnerCenterSandbox(base_url=listener.base_url, options=options)
    except SandboxDataError as exc:
        listener.sock.close()
        raise usage_error(str(exc)) from None
    info = sandbox.info()
    typer.echo(json.dumps(info))
    if not json_output:
        typer.echo(
            f"Partner Center sandbox on {listener.base_url}\n"
            f"  Referrals API   {info['referrals_api']}\n"
            f"  Webhooks API    {info['webhooks_api']}\n"
            f"  Token endpoint  {info['token_endpoint']}\n"
            f"  Control API     {info['control_api']}\n"
            f"  State           {data if data else 'in memory (use --data FILE to keep it)'}\n"
            "The JSON line above has working credentials. Press Ctrl-C to stop."
        )
    run_forever([(sandbox.app, listener)])
