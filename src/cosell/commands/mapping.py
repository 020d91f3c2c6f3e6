"""`cosell mapping check`: a mapping file against the org's describe and the referral model.

The command loads the settings (`--config`, default `./cosell.toml`, overlaid by `COSELL_*`),
loads the mapping (`--mapping`, else `[sync] mapping_file`, else the mapping shipped with
cosell; file problems are reported at their line and column), signs in to Salesforce as the
settings say, reads the describe of the objects a mapping uses (Opportunity and Account), and
runs `cosell.mapping.check_mapping`. It prints every problem as `file:line:column: message`
and exits 1 if there is any, else prints a one-line summary and exits 0.

`describe_objects` is the only wiring: one `SalesforceClient` over an `httpx.AsyncClient`
(the command's own, or one a test hands in, e.g. over `httpx.ASGITransport` to the sandbox).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer

from cosell.commands import ConfigOption

if TYPE_CHECKING:  # imported when the command runs, so that the CLI starts quickly
    from cosell.clock import Clock
    from cosell.config import Settings
    from cosell.salesforce.client import SalesforceClient
    from cosell.salesforce.schema import ObjectDescription

HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)  # describe answers are large but quick

mapping_app = typer.Typer(
    help="The field mapping between Partner Center referrals and Salesforce records.",
    no_args_is_help=True,
)

Echo = Callable[[str], None]


@mapping_app.callback()
def _mapping() -> None:
    """The field mapping between Partner Center referrals and Salesforce records."""


RecordTypeValues = dict[str, dict[str, tuple[str, ...]]]


async def opportunity_record_type_values(
    client: SalesforceClient, opportunity: ObjectDescription | None
) -> RecordTypeValues:
    """The picklist values of each record type of Opportunity available to cosell's user.

    One UI API call per record type (none in an org with only Master), for `check_mapping`'s
    `record_type_values`.

    Raises:
        SalesforceError: Salesforce refused a call.
    """
    if opportunity is None:
        return {}
    return {
        info.record_type_id: await client.picklist_values("Opportunity", info.record_type_id)
        for info in opportunity.record_type_infos
        if info.available and not info.master
    }


async def describe_objects(
    settings: Settings,
    names: Iterable[str],
    *,
    http: httpx.AsyncClient | None = None,
    clock: Clock | None = None,
) -> tuple[dict[str, ObjectDescription], RecordTypeValues, str]:
    """Sign in to Salesforce as the settings say and describe the named objects.

    Args:
        settings: cosell's settings (`[salesforce]`).
        names: the objects to describe.
        http: the HTTP client to use; None for a new one, closed before returning.
        clock: the clock of the auth flow and client.

    Returns:
        The descriptions of the objects the org has (a missing object is left out), the
        picklist values of Opportunity's record types (`opportunity_record_type_values`), and
        the org's instance URL.

    Raises:
        ConfigError: the sign-in the settings choose lacks a credential.
        SalesforceError: Salesforce refused the sign-in or a describe.
    """
    from cosell.salesforce.client import SalesforceClient
    from cosell.salesforce.errors import NotFoundError

    flow = settings.salesforce.auth_flow(clock=clock)
    owned = http is None
    client_http = http if http is not None else httpx.AsyncClient(timeout=HTTP_TIMEOUT)
    try:
        client = SalesforceClient(
            client_http, flow, api_version=settings.salesforce.api_version, clock=clock
        )
        found: dict[str, ObjectDescription] = {}
        for name in names:
            try:
                found[name] = await client.describe(name)
            except NotFoundError:
                continue
        values = await opportunity_record_type_values(client, found.get("Opportunity"))
        token = client.session.current
        return found, values, token.instance_url if token else ""
    finally:
        if owned:
            await client_http.aclose()


async def run_check(
    mapping_file: Path | None,
    config_file: Path | None,
    *,
    echo: Echo,
    http: httpx.AsyncClient | None = None,
    clock: Clock | None = None,
) -> int:
    """Check a mapping against the org; print the problems or a summary.

    Args:
        mapping_file: the mapping YAML; None for `[sync] mapping_file` or the default mapping.
        config_file: the settings file; None for `./cosell.toml`.
        echo: where lines go.
        http: the HTTP client for Salesforce (tests); None for a new one.
        clock: the clock of the Salesforce client (tests).

    Returns:
        The exit status: 0 when the mapping fits, 1 when there is any problem.
    """
    from cosell.config import ConfigError, Settings
    from cosell.mapping import MappingError, check_mapping, load_mapping
    from cosell.mapping.model import ACCOUNT, OPPORTUNITY
    from cosell.salesforce.errors import SalesforceError

    try:
        settings = Settings.load(config_file)
    except ConfigError as exc:
        echo(f"Error: {exc}")
        return 1
    path = mapping_file or settings.sync.mapping_file
    try:
        mapping = load_mapping(path)
    except MappingError as exc:
        for problem in exc.problems:
            echo(str(problem))
        echo(
            _count(len(exc.problems)) + " in the mapping file; nothing was checked against the org"
        )
        return 1
    try:
        lead_sync = settings.sync.lead_sync
        children = [c.object for c in mapping.collections.objects().values()]
        objects = (OPPORTUNITY, ACCOUNT, *children, *(("Lead",) if lead_sync else ()))
        descriptions, values, instance = await describe_objects(
            settings, objects, http=http, clock=clock
        )
    except ConfigError as exc:
        echo(f"Error: {exc}")
        return 1
    except SalesforceError as exc:
        echo(f"Error: cannot read the org's schema from Salesforce: {exc}")
        return 1
    problems = check_mapping(
        mapping, lambda name: descriptions[name], lead_sync=lead_sync, record_type_values=values
    )
    for problem in problems:
        echo(str(problem))
    if problems:
        echo(f"{_count(len(problems))} in {mapping.source} against {instance}")
        return 1
    echo(
        f"OK: {mapping.source}: {len(mapping.fields)} fields"
        + (f" and {len(mapping.lead.fields)} lead fields" if lead_sync and mapping.lead else "")
        + f" fit the org at {instance} "
        f"({', '.join(sorted(descriptions))}) and the Partner Center referral model"
    )
    return 0


def _count(problems: int) -> str:
    return f"{problems} problem{'s' if problems != 1 else ''}"


@mapping_app.command("check")
def check(
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="The mapping YAML (default: the settings' sync.mapping_file, else cosell's default mapping).",
            dir_okay=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Check a mapping against the org's describe and the referral model; exit 1 on problems."""
    status = asyncio.run(run_check(mapping, config, echo=typer.echo))
    raise typer.Exit(code=status)
