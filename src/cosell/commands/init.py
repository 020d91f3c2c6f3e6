"""`cosell init`: a commented `cosell.toml` and a copy of the default mapping, to start from.

The template names every section and key of `cosell.config.Settings`, each with a comment that
says what it is and where to get its value: the Entra app registration and the admin consent
for the Partner Center API (a user with the Referrals admin role), the Salesforce connected app
or external client app (JWT bearer or client credentials), the store URL, `cosell serve`'s
public URL. Keys whose value only the admin knows are written commented out, with a
placeholder (`# tenant_id = "<...>"`), so the file is valid TOML and loads with
`Settings.load` as written; `PartnerCenterSettings.missing()` and `SalesforceSettings.missing()`
(and so `cosell check`) then list exactly the keys still to fill. Secrets are never given a
value in the file: the comments name their `COSELL_<SECTION>__<KEY>` environment variables.

`mapping.yaml` is the shipped default mapping, byte for byte, and `[sync] mapping_file` points
at it. Existing files are never replaced without `--force`; with it both are rewritten. A test
keeps the template in step with the settings model (every key of every section appears).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

CONFIG_NAME = "cosell.toml"
MAPPING_NAME = "mapping.yaml"

TEMPLATE = """\
# cosell settings. Every key can also come from an environment variable
# COSELL_<SECTION>__<KEY> (e.g. COSELL_SALESFORCE__CONSUMER_SECRET), which replaces the value here:
# keep secrets in the environment (or a secret store), never in this file.
# Commented-out keys are placeholders: fill them in and remove the '#'. `cosell check` verifies
# the result against both APIs and says what is still missing.

[partner_center]
# How cosell signs in to the Partner Center Referrals API. The Referrals API accepts only
# App+User tokens, so:
#   refresh_token       (recommended) the secure application model: an admin of your partner
#                       tenant who has the Referrals admin role signs in once, with MFA, by
#                       running `cosell connect partner-center`; cosell keeps the refresh token
#                       it gets and renews it (refresh_token_file).
#   client_credentials  app-only; enough for the Webhooks API only (not the Referrals API).
#   password            legacy username/password sign-in; fails where MFA is enforced.
auth = "refresh_token"

# Your partner tenant in Entra ID (a GUID or yourcompany.onmicrosoft.com): Partner Center >
# Account settings > Organization profile, or Entra admin center > Overview > Tenant ID.
# tenant_id = "<your Entra tenant id>"

# The app registration cosell signs in as. Create it in the Entra admin center > App
# registrations (single tenant), add the API permission "Microsoft Partner Center"
# (user_impersonation, delegated), grant admin consent, and register the app in Partner Center
# (Account settings > App management) so that it may call the Partner Center APIs.
# client_id = "<the app registration's application (client) id>"

# client_secret: the app's client secret (App registrations > Certificates & secrets). Needed
# to redeem the refresh token and for the Webhooks API (app-only). Do not write it here:
#   export COSELL_PARTNER_CENTER__CLIENT_SECRET='...'

# refresh_token: not needed when `cosell connect partner-center` stored one (it writes
# refresh_token_file). A refresh token from elsewhere can be given once, in the environment:
#   export COSELL_PARTNER_CENTER__REFRESH_TOKEN='...'
# Where cosell keeps the rotating refresh token and its record (mode 0600; relative to this
# file; default .cosell/partner-center-token.json in the directory cosell runs in).
refresh_token_file = "pc-refresh-token"

# auth = "password" only (legacy):
# username = "<the Partner Center user, e.g. referrals-admin@yourcompany.com>"
# password: export COSELL_PARTNER_CENTER__PASSWORD='...'

# The Entra host; sovereign clouds use another one.
authority_host = "{authority_host}"
# The Referrals API (change only for a proxy or the sandbox).
referrals_url = "{referrals_url}"
# The Webhooks API (likewise).
webhooks_url = "{webhooks_url}"
# Sandbox only: where Entra ID requests go (cosell sandbox up --write-config sets it).
# route_to = "http://127.0.0.1:8610"
# Your organisation id in Partner Center, only when the account has several.
# partner_org_id = "<partner organisation id>"
# Where a referral opens in Partner Center (Referral_Link__c is this URL + "/<referral id>").
ui_url = "{ui_url}"

[salesforce]
# How cosell signs in to Salesforce, as its integration user. Create a connected app (Setup >
# App Manager > New Connected App) or an external client app with OAuth enabled, the scopes
# "api" and "refresh_token, offline_access", then:
#   jwt                 (recommended) upload a certificate to the app (Use digital signatures),
#                       pre-authorise the integration user (Manage > Permitted Users: admin
#                       approved; add the user's profile or permission set) and keep the
#                       certificate's private key in private_key_file.
#   client_credentials  enable the Client Credentials Flow on the app and set its Run As user
#                       (the integration user); needs token_url = your My Domain URL.
#   refresh_token       the integration user signs in once with `cosell connect salesforce`
#                       (web-server flow with PKCE, or --device-code); enable the flow and the
#                       callback URL http://127.0.0.1:<port> on the app.
#   password            legacy username/password (+ security token).
auth = "jwt"

# The app's Consumer Key (App Manager > the app > View > Manage Consumer Details).
# consumer_key = "<the connected app's consumer key>"

# consumer_secret: the app's Consumer Secret (every flow but jwt). Do not write it here:
#   export COSELL_SALESFORCE__CONSUMER_SECRET='...'

# The integration user (jwt, password): a user with the Cosell_Integration permission set
# (deploy it with: cosell salesforce metadata --out DIR, then the sf commands it prints).
# username = "<cosell@yourcompany.com>"

# The PEM private key of the certificate uploaded to the app (jwt; relative to this file);
# `cosell salesforce keys --out DIR` makes both.
# private_key_file = "cosell-jwt.key"

# Secrets of the other flows, in the environment only:
# password: the integration user's password (password flow):
#   export COSELL_SALESFORCE__PASSWORD='...'
# security_token: the user's security token, if the org asks for one (password flow):
#   export COSELL_SALESFORCE__SECURITY_TOKEN='...'
# refresh_token: the integration user's refresh token for the app (refresh_token flow), when
# `cosell connect salesforce` did not store one:
#   export COSELL_SALESFORCE__REFRESH_TOKEN='...'
# Where `cosell connect salesforce` stores the refresh token (mode 0600; relative to this file).
# refresh_token_file = ".cosell/salesforce-token.json"

# https://login.salesforce.com for production, https://test.salesforce.com for a sandbox org,
# or your My Domain URL (https://yourcompany.my.salesforce.com).
login_url = "{login_url}"
# The token endpoint's host, when it differs from login_url (client_credentials: My Domain).
# token_url = "https://yourcompany.my.salesforce.com"
# The REST API version cosell calls.
api_version = "{api_version}"
# How cosell notices Salesforce changes: "poll" (SystemModstamp queries every
# [sync] poll_interval_seconds) or "cdc" (Change Data Capture over the Pub/Sub API, in
# about half a second; select the objects in Setup > Integrations > Change Data Capture, then
# run cosell check). The poller covers while the change stream is down.
changes = "poll"
# The CDC channel: every selected object, or a custom channel such as "/data/Cosell__chn".
# channel = "/data/ChangeEvents"
# The Pub/Sub API endpoint, and whether it is reached over TLS (always, but for a sandbox).
# pubsub_endpoint = "api.pubsub.salesforce.com:7443"
# pubsub_tls = true

[store]
# Where cosell keeps links, base snapshots, the audit and its queue. A SQLite file for one
# process; PostgreSQL (postgresql+psycopg://user@host/cosell) when several workers share the work.
url = "sqlite:///./cosell.db"

[sync]
# The field mapping (written next to this file by cosell init; check it with
# cosell mapping check --mapping mapping.yaml). Relative to this file. It maps the Deal Type
# picklist (Private / Partner-led / Co-sell) by default: an empty Deal Type is filled from
# Partner Center on the deal's next sync, never sent; the FY26 fields are mapped too.
mapping_file = "{mapping}"
# How often the pollers of both sides look for changes, in seconds.
poll_interval_seconds = 30
# How often the full reconciliation sweeps every linked deal, in seconds.
sweep_interval_seconds = 3600
# Sync referrals that are not accepted yet as Leads (instead of on-hold Opportunities).
lead_sync = false
# Hold a win until 72 hours after the referral was created: Partner Center takes Won at any
# time, but only a deal won 72 hours or more after its creation is eligible for deal
# registration. The opportunity shows the hold (Pending, with the time) while it lasts.
# false: a win is sent at once.
hold_wins_for_registration = true
# Plan only, never write (to watch what cosell would do before going live).
dry_run = false

[server]
# cosell serve listens on this address: 127.0.0.1 behind a reverse proxy that ends TLS,
# 0.0.0.0 to listen on every interface.
host = "127.0.0.1"
# The port cosell serve listens on.
port = 8080
# The public https URL Partner Center calls back, webhook path included: what
# `cosell webhooks register` registers and `cosell check` expects to find registered.
# public_url = "https://cosell.yourcompany.com/webhooks/partner-center"
# The path of the webhook endpoint.
webhook_path = "{webhook_path}"
# Where the callbacks' signing certificate may be downloaded from (Microsoft's location).
allowed_certificate_urls = ["{certificate_urls}"]
# Roots to trust instead of the public ones (tests and the sandbox only).
# trusted_ca_file = "sandbox-root-ca.pem"
# trusted_ca_url = "http://127.0.0.1:8610/cert/sandbox-root-ca.cer"
# Larger callback bodies are refused with 413 (callbacks are a few hundred bytes; at most 1 MiB).
max_body_bytes = {max_body_bytes}
# Log lines: json (one object per line, for a log pipeline) or console (for people).
log_format = "json"
# Slow clients are cut off: a request's headers must arrive within this many seconds (408),
header_timeout_seconds = {header_timeout}
# and its body within this many more.
body_timeout_seconds = {body_timeout}
# Connections one client address may hold at once (more get 429). Behind a reverse proxy
# every connection comes from the proxy: raise it, or set 0 for no cap.
max_connections_per_client = {max_connections}
# The operations console's users (/console/), written by `cosell console set-password`.
# console_users_file = "cosell-console.json"

[alerts]
# Alerts when sync health changes: apprise URLs, one per channel (none: no alerts). They hold
# secrets: prefer urls_file (one a line) or COSELL_ALERTS__URLS. `cosell alerts test` tries them.
# urls = ["json://alerts.yourcompany.com/cosell", "mailtos://user:pass@smtp.yourcompany.com?to=ops@yourcompany.com"]
# News that is not a change of health (deals newly in Error, a token near expiry) is sent as
# one digest at most this often, in minutes.
digest_minutes = 15
# How often health is read, in seconds.
check_seconds = 60
# The console address alerts link to (default: public_url's origin + /console).
# console_url = "https://cosell.yourcompany.com/console"

[console]
# Sign-in with Microsoft Entra ID, beside the console passwords: the only tenant whose
# accounts may sign in, and the console's app registration (none: passwords only).
# oidc_tenant = "00000000-0000-0000-0000-000000000000"
# oidc_client_id = "00000000-0000-0000-0000-000000000000"
# Its client secret: better COSELL_CONSOLE__OIDC_CLIENT_SECRET or oidc_client_secret_file.
# oidc_client_secret = ""
# Where Entra ID answers.
# oidc_authority = "https://login.microsoftonline.com"
# The redirect URI registered on the app (default: this server's origin + /console/oidc/callback).
# oidc_redirect_url = "https://cosell.yourcompany.com/console/oidc/callback"
# The app roles that make a user an operator (acts) or a viewer (reads).
# operator_role = "Console.Operator"
# viewer_role = "Console.Viewer"
# Or name people (user name or object id); anyone else is refused.
# operators = ["alice@yourcompany.com"]
# viewers = ["bob@yourcompany.com"]
"""


class InitError(Exception):
    """The files cannot be written where asked; the message says what to do."""


def render_template() -> str:
    """The commented `cosell.toml` that `cosell init` writes (defaults from the settings model)."""
    from cosell.config import PartnerCenterSettings, SalesforceSettings, ServerSettings

    pc, sf, server = PartnerCenterSettings(), SalesforceSettings(), ServerSettings()
    return TEMPLATE.format(
        authority_host=pc.authority_host,
        referrals_url=pc.referrals_url,
        webhooks_url=pc.webhooks_url,
        ui_url=pc.ui_url,
        login_url=sf.login_url,
        api_version=sf.api_version,
        mapping=MAPPING_NAME,
        webhook_path=server.webhook_path,
        certificate_urls='", "'.join(server.allowed_certificate_urls),
        max_body_bytes=server.max_body_bytes,
        header_timeout=server.header_timeout_seconds,
        body_timeout=server.body_timeout_seconds,
        max_connections=server.max_connections_per_client,
    )


def write_starter_files(directory: Path, *, force: bool = False) -> list[Path]:
    """Write `cosell.toml` and `mapping.yaml` into `directory` (created if missing).

    Args:
        directory: where to write.
        force: replace files that exist.

    Returns:
        The files written.

    Raises:
        InitError: a file exists and `force` is False, or the directory cannot be written.
    """
    from cosell.mapping.loader import default_mapping_text

    files = {directory / CONFIG_NAME: render_template(), directory / MAPPING_NAME: None}
    existing = [path for path in files if path.exists()]
    if existing and not force:
        names = ", ".join(str(path) for path in existing)
        raise InitError(f"{names} already exist(s); pass --force to replace, or choose --dir")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for path, text in files.items():
            path.write_text(default_mapping_text() if text is None else text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise InitError(f"cannot write into {directory}: {exc.strerror or exc}") from exc
    return written


def init(
    directory: Annotated[
        Path,
        typer.Option("--dir", help="Where to write cosell.toml and mapping.yaml.", file_okay=False),
    ] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Replace cosell.toml and mapping.yaml if they exist.")
    ] = False,
) -> None:
    """Write a commented cosell.toml and the default mapping.yaml to start from."""
    try:
        written = write_starter_files(directory, force=force)
    except InitError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    for path in written:
        typer.echo(f"Wrote {path}")
    config = directory / CONFIG_NAME
    typer.echo(
        "\nNext:\n"
        f"  1. Fill in the commented-out keys of {config} and export the secrets it names\n"
        "     (COSELL_PARTNER_CENTER__CLIENT_SECRET, COSELL_PARTNER_CENTER__REFRESH_TOKEN, ...).\n"
        "  2. Deploy cosell's Salesforce metadata: cosell salesforce metadata --out cosell-metadata\n"
        f"  3. Check everything: cosell check --config {config}\n"
        f"  4. Register the webhook: cosell webhooks register --config {config}\n"
        f"  5. Run: cosell serve --config {config}"
    )
