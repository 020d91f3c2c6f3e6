"""`cosell sandbox salesforce`: serve the Salesforce sandbox on loopback.

The socket is bound first (`serving.listen`), so that port 0 works and the sandbox is built
with the URL it really has; then one line of JSON (`SalesforceSandbox.info()`: instance, login
and token URLs, the control API, and working credentials) is printed and flushed, followed,
without `--json`, by a short hint for humans. The app is served until Ctrl-C. Bad options, a
taken port or an unusable data file exit with status 2 and a message on stderr that says what
to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cosell_sandbox.serving import listen, run_forever, usage_error


def salesforce_command(
    port: int = typer.Option(
        8620, "--port", "-p", help="Loopback TCP port to serve on; 0 picks a free port."
    ),
    pubsub_port: int | None = typer.Option(
        None,
        "--pubsub-port",
        help="Loopback TCP port of the Pub/Sub API (gRPC change events); 0 picks a free port. "
        "Default: --port + 1 (any free port when --port is 0).",
    ),
    data: Path | None = typer.Option(  # noqa: B008 - typer reads options from defaults
        None,
        "--data",
        help="SQLite file that keeps records, the change log, credentials and sessions across "
        "restarts (created if missing). Without it the state lives in memory.",
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print only the one line of startup JSON (for scripts)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Make ids, credentials and injected faults reproducible."
    ),
    single_currency: bool = typer.Option(
        False,
        "--single-currency",
        help="Emulate an org without multi-currency (no CurrencyIsoCode fields).",
    ),
    session_lifetime: float = typer.Option(
        7200.0, "--session-lifetime", help="Lifetime of issued access tokens, in seconds."
    ),
    daily_api_limit: int = typer.Option(
        15000, "--daily-api-limit", help="DailyApiRequests maximum over a rolling 24 hours."
    ),
    latency: float = typer.Option(
        0.0, "--latency", help="Seconds added to every /services/data call."
    ),
    error_503: float = typer.Option(
        0.0, "--error-503", help="Fraction (0-1) of data calls answered 503 SERVER_UNAVAILABLE."
    ),
    request_limit: float = typer.Option(
        0.0,
        "--request-limit",
        help="Fraction (0-1) of data calls answered 403 REQUEST_LIMIT_EXCEEDED.",
    ),
    lock_row: float = typer.Option(
        0.0, "--lock-row", help="Fraction (0-1) of data writes answered 400 UNABLE_TO_LOCK_ROW."
    ),
    org_profile: Path | None = typer.Option(  # noqa: B008 - typer reads options from defaults
        None,
        "--org-profile",
        help="YAML file that customises the org: validation and duplicate rules, required "
        "fields, field-level security, after-save automation (see sandbox/examples/).",
    ),
    expire_sessions: float = typer.Option(
        0.0,
        "--expire-sessions",
        help="Fraction (0-1) of data calls that first expire every session (401 follows).",
    ),
) -> None:
    """Run a local emulator of the Salesforce REST API, OAuth token endpoint and SOAP login."""
    from cosell_sandbox.salesforce.app import (
        ApiFaults,
        SalesforceSandbox,
        SandboxDataError,
        SandboxOptions,
    )

    faults = ApiFaults(
        latency_seconds=latency,
        error_503_fraction=error_503,
        request_limit_fraction=request_limit,
        lock_row_fraction=lock_row,
        expire_sessions_fraction=expire_sessions,
    )
    try:
        faults.validate()
    except ValueError as exc:
        raise usage_error(f"{exc} (see --help)") from None
    if session_lifetime <= 0:
        raise usage_error("--session-lifetime must be positive (see --help)")
    if daily_api_limit <= 0:
        raise usage_error("--daily-api-limit must be positive (see --help)")
    from cosell_sandbox.salesforce.orgprofile import OrgProfileError, load_profile

    try:
        profile = load_profile(org_profile) if org_profile is not None else None
    except OrgProfileError as exc:
        raise usage_error(str(exc)) from None
    options = SandboxOptions(
        org_profile=profile,
        seed=seed,
        multi_currency=not single_currency,
        session_lifetime_seconds=session_lifetime,
        data_path=data,
        faults=faults,
        daily_api_limit=daily_api_limit,
    )
    try:
        listener = listen(port)
    except OSError as exc:
        raise usage_error(str(exc)) from None
    try:
        sandbox = SalesforceSandbox(base_url=listener.base_url, options=options)
    except (SandboxDataError, OrgProfileError) as exc:
        listener.sock.close()
        raise usage_error(str(exc)) from None
    from cosell_sandbox.salesforce.pubsub.service import PubSubServer

    try:
        pubsub = PubSubServer(
            sandbox.pubsub, pubsub_port if pubsub_port is not None else (port + 1 if port else 0)
        )
    except OSError as exc:
        listener.sock.close()
        sandbox.close()
        raise usage_error(str(exc).replace("another port", "another --pubsub-port")) from None
    sandbox.pubsub_endpoint = pubsub.endpoint
    info = sandbox.info()
    typer.echo(json.dumps(info))
    if not json_output:
        typer.echo(
            f"Salesforce sandbox on {listener.base_url}\n"
            f"  Instance URL    {info['instance_url']} (REST API v31.0 to v{info['api_version']})\n"
            f"  Token endpoint  {info['token_url']}\n"
            f"  Control API     {info['control_api']}\n"
            f"  Pub/Sub API     {info['pubsub_endpoint']} (gRPC, Change Data Capture)\n"
            f"  Log in as       {info['username']}\n"
            f"  State           {data if data else 'in memory (use --data FILE to keep it)'}\n"
            "The JSON line above has working credentials. Press Ctrl-C to stop."
        )
    try:
        run_forever([(sandbox.app, listener)], services=[pubsub])
    finally:
        pubsub.release()
        sandbox.close()
