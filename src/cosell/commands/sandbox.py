"""`cosell sandbox`: the local emulators, and settings that point cosell at them.

`cosell sandbox partner-center` and `cosell sandbox salesforce` are the sandboxes' own commands
(`cosell_sandbox.cli`, also installed as `cosell-sandbox`), run one emulator each with every
flag it has, and are loaded only when asked for (`SandboxGroup`): cosell runs without the
sandboxes installed, and its commands start without importing them. `up` runs both in one
process (one event loop, stopped together by Ctrl-C) with their defaults, which is what a
developer or an admin trying cosell wants first. It prints one line of JSON holding both
sandboxes' URLs and credentials and, with `--write-config FILE`, writes a `cosell.toml` for them
(never over an existing file without `--force`), so `cosell sync`, `cosell plan` and `cosell
mapping check` work against the sandboxes with no hand editing. It lives here (not in
`cosell_sandbox`) because it uses cosell's settings, which the sandboxes must not know.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from cosell.commands import require_sandboxes, sandboxes_installed

if TYPE_CHECKING:
    from cosell.config import Settings
    from cosell_sandbox.partnercenter.app import PartnerCenterSandbox
    from cosell_sandbox.salesforce.app import SalesforceSandbox
    from cosell_sandbox.serving import Listener

DEFAULT_STORE_URL = "sqlite:///./cosell.db"


class SandboxGroup(TyperGroup):
    """`cosell sandbox`: `up` from here, the emulators' own commands from `cosell_sandbox.cli`.

    Those are loaded the first time the group lists or runs them (`cosell sandbox --help`,
    `cosell sandbox salesforce ...`), never when cosell starts. Without the sandboxes installed
    the group lists `up` alone, and naming any of its commands says how to install them.
    """

    # `ctx` and the commands are typer's own (vendored) click types, which it does not export.

    def _emulators(self) -> dict[str, Any]:
        if not sandboxes_installed():
            return {}
        from cosell_sandbox.cli import sandbox_app

        return dict(typer.main.get_group(sandbox_app).commands)

    def list_commands(self, ctx: Any) -> list[str]:
        """The emulators' commands, then `up`."""
        return [*self._emulators(), *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """`cmd_name`'s command, loading the sandboxes' commands if it is one of theirs."""
        command = super().get_command(ctx, cmd_name)
        if command is None:
            require_sandboxes(f"cosell sandbox {cmd_name}")
            command = self._emulators().get(cmd_name)
        return command


def settings_toml(settings: Settings) -> str:
    """`settings` as a cosell.toml text (secrets written out: these are sandbox credentials)."""
    lines = [
        "# cosell settings for the local sandboxes, written by `cosell sandbox up --write-config`.",
        "# The credentials below are the sandboxes' own; they work nowhere else.",
    ]
    for section, values in settings.model_dump(exclude_none=True).items():
        lines.append(f"\n[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    # A JSON string is a valid TOML basic string: the same quotes and escapes.
    return json.dumps(str(value))


def _fail(message: str, listeners: list[Listener]) -> typer.Exit:
    from cosell_sandbox.serving import usage_error

    for listener in listeners:
        listener.sock.close()
    return usage_error(message)


def up_command(
    pc_port: int = typer.Option(
        8610, "--pc-port", help="Loopback port of the Partner Center sandbox; 0 picks a free one."
    ),
    sf_port: int = typer.Option(
        8620, "--sf-port", help="Loopback port of the Salesforce sandbox; 0 picks a free one."
    ),
    pubsub_port: int | None = typer.Option(
        None,
        "--pubsub-port",
        help="Loopback port of the Salesforce sandbox's Pub/Sub API (gRPC, change events); "
        "0 picks a free one. Default: the next port after --sf-port (any free one when that is 0).",
    ),
    data_dir: Path | None = typer.Option(  # noqa: B008 - typer reads options from defaults
        None,
        "--data-dir",
        help="Directory that keeps both sandboxes' state across restarts (partner-center.db, "
        "salesforce.db and the Salesforce JWT key pair). Without it the state lives in memory.",
    ),
    write_config: Path | None = typer.Option(  # noqa: B008 - typer reads options from defaults
        None,
        "--write-config",
        help="Write a cosell.toml for these sandboxes to this file, so `cosell sync` and "
        "`cosell plan` run against them. An existing file is kept unless --force is given.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Let --write-config replace an existing file."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Make credentials, ids and injected faults reproducible."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print only the one line of startup JSON (for scripts)."
    ),
    org_profile: Path | None = typer.Option(  # noqa: B008 - typer reads options from defaults
        None,
        "--org-profile",
        help="YAML file that makes the Salesforce sandbox a customised org (validation and "
        "duplicate rules, required fields, field-level security, automation); see "
        "sandbox/examples/customised-org.yaml.",
    ),
) -> None:
    """Run both sandboxes (Partner Center and Salesforce) until Ctrl-C."""
    require_sandboxes("cosell sandbox up")
    from cosell_sandbox.partnercenter.app import PartnerCenterSandbox
    from cosell_sandbox.partnercenter.app import SandboxOptions as PartnerCenterOptions
    from cosell_sandbox.partnercenter.persistence import SandboxDataError as PartnerCenterDataError
    from cosell_sandbox.salesforce.app import SalesforceSandbox, SandboxDataError
    from cosell_sandbox.salesforce.app import SandboxOptions as SalesforceOptions
    from cosell_sandbox.salesforce.orgprofile import OrgProfileError, load_profile
    from cosell_sandbox.serving import listen

    if write_config is not None and write_config.exists() and not force:
        typer.echo(
            f"Error: --write-config {write_config} exists; cosell keeps it. Pass --force to "
            "replace it, or name another file.",
            err=True,
        )
        raise typer.Exit(code=2)
    try:
        profile = load_profile(org_profile) if org_profile is not None else None
    except OrgProfileError as exc:
        raise _fail(str(exc), []) from None
    listeners: list[Listener] = []
    try:
        listeners.append(listen(pc_port))
        listeners.append(listen(sf_port))
    except OSError as exc:
        raise _fail(str(exc), listeners) from None
    pc_listener, sf_listener = listeners
    if data_dir is not None:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _fail(f"cannot use --data-dir {data_dir}: {exc.strerror}", listeners) from None
    try:
        partner_center = PartnerCenterSandbox(
            base_url=pc_listener.base_url,
            options=PartnerCenterOptions(
                seed=seed, data_path=data_dir / "partner-center.db" if data_dir else None
            ),
        )
        salesforce = SalesforceSandbox(
            base_url=sf_listener.base_url,
            options=SalesforceOptions(
                seed=seed,
                data_path=data_dir / "salesforce.db" if data_dir else None,
                key_dir=data_dir / "salesforce-keys" if data_dir else None,
                org_profile=profile,
            ),
        )
    except (PartnerCenterDataError, SandboxDataError, OrgProfileError) as exc:
        raise _fail(str(exc), listeners) from None
    from cosell_sandbox.salesforce.pubsub.service import PubSubServer

    try:
        pubsub = PubSubServer(salesforce.pubsub, _pubsub_port(pubsub_port, sf_port))
    except OSError as exc:
        salesforce.close()
        raise _fail(str(exc).replace("another port", "another --pubsub-port"), listeners) from None
    salesforce.pubsub_endpoint = pubsub.endpoint
    try:
        _serve(
            partner_center,
            salesforce,
            listeners,
            write_config,
            json_output=json_output,
            pubsub=pubsub,
        )
    finally:
        pubsub.release()
        salesforce.close()


def _pubsub_port(pubsub_port: int | None, sf_port: int) -> int:
    if pubsub_port is not None:
        return pubsub_port
    return sf_port + 1 if sf_port else 0


def _serve(
    partner_center: PartnerCenterSandbox,
    salesforce: SalesforceSandbox,
    listeners: list[Listener],
    write_config: Path | None,
    *,
    json_output: bool,
    pubsub: Any,
) -> None:
    pc_info, sf_info = partner_center.info(), salesforce.info()
    if write_config is not None:
        _write_settings(write_config, pc_info, sf_info, listeners)
    typer.echo(json.dumps({"partner_center": pc_info, "salesforce": sf_info}))
    if not json_output:
        state = "in memory (use --data-dir DIR to keep it)"
        typer.echo(
            "cosell sandboxes are running:\n"
            f"  Partner Center  {pc_info['base_url']}  (Referrals API {pc_info['referrals_api']},"
            f" control API {pc_info['control_api']})\n"
            f"  Salesforce      {sf_info['base_url']}  (instance {sf_info['instance_url']},"
            f" control API {sf_info['control_api']})\n"
            f"  Pub/Sub API     {sf_info['pubsub_endpoint']}  (gRPC, Change Data Capture)\n"
            + (f"  Settings        {write_config}\n" if write_config else "")
            + "The JSON line above has working credentials for both"
            + (f"; state {state}" if not partner_center.options.data_path else "")
            + ". Press Ctrl-C to stop."
        )
    from cosell_sandbox.serving import run_forever

    pc_listener, sf_listener = listeners
    run_forever(
        [(partner_center.app, pc_listener), (salesforce.app, sf_listener)], services=[pubsub]
    )


def _write_settings(
    path: Path, pc_info: Mapping[str, Any], sf_info: Mapping[str, Any], listeners: list[Listener]
) -> None:
    from cosell.config import Settings

    settings = Settings.for_sandboxes(pc_info, sf_info, store_url=DEFAULT_STORE_URL)
    try:
        path.write_text(settings_toml(settings), encoding="utf-8")
        path.chmod(0o600)  # it holds (sandbox) secrets; keep the habit
    except OSError as exc:
        raise _fail(f"cannot write --write-config {path}: {exc.strerror}", listeners) from None
