"""cosell's settings: `cosell.toml`, overlaid by `COSELL_*` environment variables.

    [partner_center]   how to reach and authenticate to the Referrals and Webhooks APIs
    [salesforce]       which OAuth flow, its credentials, the login URL and API version
    [store]            the database URL (SQLite file by default, PostgreSQL by URL)
    [sync]             the mapping file, poll and sweep intervals, lead sync, dry run
    [server]           `cosell serve`: listen address, public URL, webhook checks, log format
    [alerts]           where alerts on sync health changes go (apprise URLs), and how often
    [console]          the console's single sign-on with Microsoft Entra ID (OpenID Connect)

Mechanism: the TOML file is parsed with `tomllib`; then every environment variable named
`COSELL_<SECTION>__<KEY>` (double underscore between levels, any case) replaces that key, so a
secret can stay out of the file (`COSELL_SALESFORCE__CONSUMER_SECRET`). Variables without `__`
(`COSELL_WORKER_ID`, `COSELL_FAILPOINT`) are not settings and are left alone. The merged data is
validated by the pydantic models below; every problem is reported at once, each naming the key
and where its value came from (the file, or the environment variable), in a `ConfigError`.
Relative paths in the file are relative to the file's directory.

Secrets can also come from files: `<secret>_file` (in the file or the environment, e.g.
`COSELL_SALESFORCE__CONSUMER_SECRET_FILE=/run/secrets/sf`) names a file whose content, stripped,
is the secret (`SECRET_FILE_KEYS`; a Kubernetes or Docker secret). Setting a secret and its file
both is an error.

Invariants: secrets are `SecretStr` (their repr and str are masked, and no error message
quotes a secret's value); a missing default file means "defaults + environment"; a file named
explicitly must exist. `Settings.for_sandboxes` builds working settings from the startup JSON
of the two sandboxes (`cosell sandbox up --json`), for tests and the demo.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from cosell.partnercenter.defaults import (
    DEFAULT_AUTHORITY_HOST,
    MAX_BODY_BYTES,
    MICROSOFT_CERTIFICATE_URL_PREFIX,
    WEBHOOKS_BASE_URL,
)
from cosell.partnercenter.defaults import REFERRALS_BASE_URL as PARTNER_CENTER_BASE_URL
from cosell.salesforce.defaults import DEFAULT_API_VERSION, LOGIN_URL

if TYPE_CHECKING:  # the clients (msal, httpx, cryptography) load only when a flow is built
    from cosell.clock import Clock
    from cosell.partnercenter.auth import RefreshTokenStore
    from cosell.salesforce.auth import AuthFlow
    from cosell.tokenstore import FileTokenStore

DEFAULT_CONFIG_FILE = Path("cosell.toml")
# Where `cosell connect` keeps refresh tokens unless a `*_token_file` setting names a file:
# beside ./cosell.toml and ./cosell.db, in the directory cosell runs in.
DEFAULT_TOKEN_DIR = Path(".cosell")
ENV_PREFIX = "COSELL_"
ENV_SEPARATOR = "__"
PARTNER_CENTER_UI_URL = "https://partner.microsoft.com/dashboard/referrals/v2/leads"

_VERSION = re.compile(r"^\d+\.\d$")
_URL = re.compile(r"^https?://[^\s/]+")


class ConfigError(Exception):
    """Settings that cannot be used; the message names each bad key and where it came from."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _url(value: str | None) -> str | None:
    if value is not None and not _URL.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return None if value is None else value.rstrip("/")


class PartnerCenterSettings(_Section):
    """`[partner_center]`: the Referrals API and its Entra ID app.

    Attributes:
        auth: `refresh_token` (the secure application model: a partner admin's delegated
            token), `client_credentials` (app-only; the Webhooks API), or `password` (legacy).
        tenant_id: the partner's Entra tenant (GUID or domain).
        client_id: the app registration's id.
        client_secret: the app's secret.
        refresh_token: the first refresh token; once rotated, `refresh_token_file` holds it.
        refresh_token_file: where the rotating refresh token is kept (mode 0600).
        username: the user of the legacy password grant.
        password: that user's password.
        authority_host: the Entra host (sovereign clouds use others).
        referrals_url: the Referrals API collection URL.
        webhooks_url: the Webhooks API root.
        route_to: sandbox only: send every Entra ID request to this base URL.
        partner_org_id: the partner's organisation id, when the account has several.
        ui_url: the referral pages in Partner Center (`Referral_Link__c` is `<ui_url>/<id>`).
    """

    auth: Literal["refresh_token", "client_credentials", "password"] = "refresh_token"
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    refresh_token: SecretStr | None = None
    refresh_token_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    authority_host: str = DEFAULT_AUTHORITY_HOST
    referrals_url: str = f"{PARTNER_CENTER_BASE_URL}/referrals"
    webhooks_url: str = WEBHOOKS_BASE_URL
    route_to: str | None = None
    partner_org_id: str | None = None
    ui_url: str = PARTNER_CENTER_UI_URL

    @field_validator("referrals_url", "webhooks_url", "route_to", "ui_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _url(value)

    @property
    def api_base_url(self) -> str:
        """The Referrals client's base URL (`referrals_url` without `/referrals`)."""
        return self.referrals_url.removesuffix("/referrals")

    @property
    def token_file(self) -> Path:
        """Where `cosell connect partner-center` stores the refresh token and cosell reads it."""
        return self.refresh_token_file or DEFAULT_TOKEN_DIR / "partner-center-token.json"

    def refresh_token_store(self, clock: Clock) -> RefreshTokenStore:
        """The refresh token's store.

        The token file when one is set or exists (what `cosell connect` wrote), else
        `refresh_token` in memory (its rotations are then not kept across runs).
        """
        from cosell.partnercenter.auth import FileRefreshTokenStore, InMemoryRefreshTokenStore

        first = _reveal(self.refresh_token) or None
        if self.refresh_token_file is not None or self.token_file.exists():
            store = FileRefreshTokenStore(self.token_file, clock=clock)
            if store.load() is None and first:
                store.save(first)
            return store
        return InMemoryRefreshTokenStore(first)

    def missing(self) -> list[str]:
        """The keys the chosen `auth` needs that are not set."""
        needed = ["tenant_id", "client_id"]
        if (
            self.auth == "refresh_token"
            and self.refresh_token_file is None
            and not self.token_file.exists()
        ):
            needed.append("refresh_token")
        if self.auth == "client_credentials":
            needed.append("client_secret")
        if self.auth == "password":
            needed += ["username", "password"]
        return [key for key in needed if getattr(self, key) is None]


class SalesforceSettings(_Section):
    """`[salesforce]`: the org and how cosell signs in to it.

    Attributes:
        auth: `jwt` (recommended: a certificate on the connected app), `client_credentials`
            (My Domain `token_url` required), `refresh_token`, or `password` (legacy).
        consumer_key: the connected app's consumer key.
        consumer_secret: its secret (all flows but `jwt`).
        username: the integration user (`jwt`, `password`).
        password: the user's password (`password`).
        security_token: the user's security token (`password`, when the org asks for one).
        refresh_token: the refresh token (`refresh_token`), when not in the token file.
        refresh_token_file: where `cosell connect salesforce` stores the refresh token (mode
            0600; default `.cosell/salesforce-token.json`).
        private_key_file: the PEM private key matching the app's certificate (`jwt`).
        login_url: `https://login.salesforce.com`, `https://test.salesforce.com` for sandbox
            orgs, or My Domain.
        token_url: the My Domain URL or token endpoint (default: `login_url`).
        api_version: the REST API version, e.g. `62.0`.
        changes: how cosell notices Salesforce changes: `poll` (SystemModstamp queries every
            `[sync] poll_interval_seconds`) or `cdc` (Change Data Capture over the Pub/Sub API,
            with the poller as the fallback while the stream is down).
        channel: the CDC channel: `/data/ChangeEvents` (every selected object) or a custom
            channel such as `/data/Cosell__chn`.
        pubsub_endpoint: the Pub/Sub API's `host:port`.
        pubsub_tls: whether the Pub/Sub channel uses TLS (always, but for a local sandbox).
    """

    auth: Literal["jwt", "client_credentials", "refresh_token", "password"] = "jwt"
    consumer_key: str | None = None
    consumer_secret: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    refresh_token_file: Path | None = None
    private_key_file: Path | None = None
    login_url: str = LOGIN_URL
    token_url: str | None = None
    api_version: str = DEFAULT_API_VERSION
    changes: Literal["poll", "cdc"] = "poll"
    channel: str = "/data/ChangeEvents"
    pubsub_endpoint: str = "api.pubsub.salesforce.com:7443"
    pubsub_tls: bool = True

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        if not re.match(r"^/data/[A-Za-z][A-Za-z0-9_]*$", value):
            raise ValueError(
                f"{value!r} is not a change event channel such as /data/ChangeEvents or "
                "/data/Cosell__chn"
            )
        return value

    @field_validator("login_url", "token_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _url(value)

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        value = value.removeprefix("v")
        if not _VERSION.match(value):
            raise ValueError(f"{value!r} is not an API version such as {DEFAULT_API_VERSION!r}")
        return value

    NEEDS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "jwt": ("consumer_key", "username", "private_key_file"),
        "client_credentials": ("consumer_key", "consumer_secret"),
        "refresh_token": ("consumer_key", "consumer_secret", "refresh_token"),
        "password": ("consumer_key", "consumer_secret", "username", "password"),
    }

    @property
    def token_file(self) -> Path:
        """Where `cosell connect salesforce` stores the refresh token and cosell reads it."""
        return self.refresh_token_file or DEFAULT_TOKEN_DIR / "salesforce-token.json"

    def token_store(self, clock: Clock | None = None) -> FileTokenStore | None:
        """The token file's store when it holds a token (or is set), else None."""
        if self.refresh_token_file is None and not self.token_file.exists():
            return None
        from cosell.tokenstore import FileTokenStore

        return FileTokenStore(self.token_file, clock=clock)

    def missing(self) -> list[str]:
        """The keys the chosen `auth` needs that are not set."""
        needed = list(self.NEEDS[self.auth])
        if self.auth == "refresh_token" and self.token_store() is not None:
            needed.remove("refresh_token")
        return [key for key in needed if getattr(self, key) is None]

    def auth_flow(self, *, clock: Clock | None = None) -> AuthFlow:
        """The OAuth flow these settings describe.

        Args:
            clock: the time source of the flow (JWT expiry, token timestamps).

        Raises:
            ConfigError: a key the flow needs is missing, or the private key cannot be read.
        """
        from cosell.salesforce.auth import (
            ClientCredentialsFlow,
            JwtBearerFlow,
            PasswordFlow,
            RefreshTokenFlow,
        )

        missing = self.missing()
        if missing:
            keys = ", ".join(f"salesforce.{key}" for key in missing)
            raise ConfigError(
                f"[salesforce] auth = {self.auth!r} needs {keys}: set them in cosell.toml or as "
                f"COSELL_SALESFORCE__<KEY> environment variables"
            )
        key = self.consumer_key or ""
        secret = _reveal(self.consumer_secret)
        token_url = self.token_url or self.login_url
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        if self.auth == "jwt":
            assert self.private_key_file is not None
            try:
                pem = self.private_key_file.read_text("utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"salesforce.private_key_file: cannot read {self.private_key_file} "
                    f"({exc.strerror or exc}); give the PEM private key of the connected app's "
                    "certificate"
                ) from exc
            return JwtBearerFlow(key, self.username or "", pem, login_url=self.login_url, **extra)
        if self.auth == "client_credentials":
            return ClientCredentialsFlow(key, secret, token_url, **extra)
        if self.auth == "refresh_token":
            store = self.token_store(clock)
            stored = _stored_token(store)
            return RefreshTokenFlow(
                key,
                secret,
                stored or _reveal(self.refresh_token),
                token_url,
                on_rotation=store.save if store is not None and stored else None,
                token_source=_quiet_loader(store) if store is not None and stored else None,
                **extra,
            )
        return PasswordFlow(
            key,
            secret,
            self.username or "",
            _reveal(self.password),
            _reveal(self.security_token),
            token_url,
            **extra,
        )


def _quiet_loader(store: FileTokenStore) -> Callable[[], str | None]:
    from cosell.tokenstore import TokenFileError

    def load() -> str | None:
        try:
            return store.load()
        except TokenFileError:
            return None  # keep the token in hand; `cosell check` reports the file

    return load


def _stored_token(store: FileTokenStore | None) -> str | None:
    if store is None:
        return None
    from cosell.tokenstore import TokenFileError

    try:
        return store.load()
    except TokenFileError as exc:
        raise ConfigError(f"salesforce.refresh_token_file: {exc}") from exc


def _reveal(secret: SecretStr | None) -> str:
    return "" if secret is None else secret.get_secret_value()


class StoreSettings(_Section):
    """`[store]`.

    Attributes:
        url: SQLAlchemy URL; None for `sqlite:///./cosell.db`; `postgresql+psycopg://...` for
            several workers. A relative SQLite file written in a settings file is resolved
            from that file's folder (from the working directory when it comes from the
            environment).
    """

    url: str | None = None


class SyncSettings(_Section):
    """`[sync]`.

    Attributes:
        mapping_file: the mapping YAML; None for the mapping shipped with cosell.
        poll_interval_seconds: how often both change pollers run.
        sweep_interval_seconds: how often the full reconciliation runs.
        lead_sync: sync not-yet-accepted referrals as Leads.
        hold_wins_for_registration: hold a win until 72 hours after the referral was
            created, the wait deal registration asks for (Partner Center itself takes Won
            at any time); the record says so while a win is held. False: wins go at once.
        dry_run: plan, never write.
    """

    mapping_file: Path | None = None
    poll_interval_seconds: int = Field(default=30, gt=0)
    sweep_interval_seconds: int = Field(default=3600, gt=0)
    lead_sync: bool = False
    hold_wins_for_registration: bool = True
    dry_run: bool = False


class ServerSettings(_Section):
    """`[server]`: how `cosell serve` listens and checks webhook callbacks.

    Attributes:
        host: the address to listen on (127.0.0.1: behind a reverse proxy that ends TLS;
            0.0.0.0 to listen on every interface).
        port: the port to listen on.
        public_url: the https URL Partner Center calls back, webhook path included (what
            `cosell webhooks register` registers and `/readyz` expects to find registered).
        webhook_path: the path of the webhook endpoint.
        allowed_certificate_urls: URL prefixes the callback's signing certificate may come
            from (Microsoft's documented location; the sandbox's `/cert/` in tests).
        trusted_ca_file: a PEM file of root certificates to trust instead of the public
            roots (the sandbox's CA).
        trusted_ca_url: sandbox only: download the root certificate to trust (DER or PEM)
            from this URL at start.
        max_body_bytes: larger callback bodies are refused with 413 before being read.
        log_format: `json` (one object per line) or `console` (for people).
        header_timeout_seconds: a request's headers must arrive within this (else 408).
        body_timeout_seconds: a request's body must arrive within this after its headers.
        max_connections_per_client: connections one client address may hold at once (more
            get 429); behind a reverse proxy all come from the proxy: raise it, or 0 for no cap.
        console_users_file: the operations console's users (written by `cosell console
            set-password`; relative paths are from the working directory).
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None
    webhook_path: str = "/webhooks/partner-center"
    allowed_certificate_urls: tuple[str, ...] = (MICROSOFT_CERTIFICATE_URL_PREFIX,)
    trusted_ca_file: Path | None = None
    trusted_ca_url: str | None = None
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, gt=0, le=MAX_BODY_BYTES)
    log_format: Literal["json", "console"] = "json"
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_connections_per_client: int = Field(default=256, ge=0)
    console_users_file: Path = Path("cosell-console.json")

    @field_validator("public_url", "trusted_ca_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _url(value)

    @field_validator("allowed_certificate_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # An environment variable holds one string: `https://a/cert/,https://b/cert/`.
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("webhook_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or len(value) < 2:
            raise ValueError(f"{value!r} is not a path such as '/webhooks/partner-center'")
        return value.rstrip("/")


class AlertSettings(_Section):
    """`[alerts]`: messages when sync health changes, sent through apprise.

    Attributes:
        urls: apprise URLs, one per channel (`json://host/path` a generic webhook,
            `slack://…`, `msteams://…` or `workflows://…`, `mailto://…`); none turns alerts
            off. In the environment or `urls_file`, separated by whitespace or newlines.
        digest_minutes: news that is not a change of health (deals newly in Error, a
            token close to expiry) is gathered into one digest at most this often.
        check_seconds: how often health is read.
        console_url: the console's address the alerts link to (default: `[server]
            public_url`'s origin + `/console`).
    """

    urls: tuple[SecretStr, ...] = ()
    digest_minutes: int = Field(default=15, gt=0, le=24 * 60)
    check_seconds: int = Field(default=60, gt=0, le=3600)
    console_url: str | None = None

    @field_validator("urls", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        # An environment variable or a secret file holds one string: split on whitespace.
        if isinstance(value, str):
            return tuple(value.split())
        if isinstance(value, SecretStr):
            return tuple(value.get_secret_value().split())
        return value

    @field_validator("urls")
    @classmethod
    def _schemes(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for url in value:
            scheme = url.get_secret_value().split("://", 1)[0]
            if "://" not in url.get_secret_value() or not scheme.isalnum():
                raise ValueError(
                    f"an alert URL must look like `scheme://…` (`{scheme[:12]}…` does not); see "
                    "the README's Alerts section"
                )
        return value

    @field_validator("console_url")
    @classmethod
    def _console(cls, value: str | None) -> str | None:
        return _url(value)


class ConsoleSettings(_Section):
    """`[console]`: single sign-on to the console with Microsoft Entra ID (OpenID Connect).

    Local users (`cosell console set-password`) sign in beside it.

    Attributes:
        oidc_tenant: the Entra tenant id whose users may sign in; none turns SSO off.
        oidc_client_id: the console's app registration (application id).
        oidc_client_secret: its client secret (or `oidc_client_secret_file`).
        oidc_authority: where Entra ID answers (`https://login.microsoftonline.com`; the
            sandbox's URL in tests).
        oidc_redirect_url: the callback URL registered on the app (default: the request's
            origin + `/console/oidc/callback`).
        operator_role: the app role that makes a user an operator.
        viewer_role: the app role that makes a user a viewer.
        operators: users (`preferred_username` or object id) who are operators whatever
            their roles.
        viewers: users who are viewers; with no role and in neither list, a user is refused.
    """

    oidc_tenant: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_authority: str = f"https://{DEFAULT_AUTHORITY_HOST}"
    oidc_redirect_url: str | None = None
    operator_role: str = "Console.Operator"
    viewer_role: str = "Console.Viewer"
    operators: tuple[str, ...] = ()
    viewers: tuple[str, ...] = ()

    @field_validator("operators", "viewers", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("oidc_authority", "oidc_redirect_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _url(value)

    @property
    def sso(self) -> bool:
        """Whether Entra sign-in is configured."""
        return bool(self.oidc_tenant and self.oidc_client_id)


class Settings(_Section):
    """Everything cosell is configured with.

    Attributes:
        partner_center: `[partner_center]`.
        salesforce: `[salesforce]`.
        store: `[store]`.
        sync: `[sync]`.
        server: `[server]`.
        alerts: `[alerts]`.
        console: `[console]`.
    """

    partner_center: PartnerCenterSettings = Field(default_factory=PartnerCenterSettings)
    salesforce: SalesforceSettings = Field(default_factory=SalesforceSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @classmethod
    def load(
        cls, path: Path | None = None, *, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Read `cosell.toml` (or `path`) and overlay the `COSELL_*` environment variables.

        Args:
            path: the TOML file; None for `./cosell.toml`, which may be absent (defaults and
                environment only). A file given explicitly must exist.
            environ: the environment (default: `os.environ`).

        Raises:
            ConfigError: the file cannot be read or parsed, or values are invalid; the message
                lists every problem with its key and its source.
        """
        explicit = path is not None
        file = path if path is not None else DEFAULT_CONFIG_FILE
        data: dict[str, Any] = {}
        origins: dict[tuple[str, ...], str] = {}
        try:
            text = file.read_text("utf-8")
        except FileNotFoundError:
            if explicit:
                raise ConfigError(
                    f"{file}: no such settings file; create it (see the README) or leave out "
                    "--config to use ./cosell.toml"
                ) from None
            text = None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot read the settings file ({exc})") from exc
        if text is not None:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
            _resolve_paths(data, file.parent)
            origins = dict.fromkeys(_keys(data), str(file))
        for name, value in sorted((environ if environ is not None else os.environ).items()):
            keys = _env_keys(name)
            if keys is None:
                continue
            node = data
            for key in keys[:-1]:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child
            node[keys[-1]] = value
            origin = f"environment variable {name}"
            origins[keys] = origin
            for depth in range(1, len(keys)):
                origins.setdefault(keys[:depth], origin)
        _read_secret_files(data, origins, base=file.parent)
        return cls._validated(data, origins, str(file))

    @classmethod
    def _validated(
        cls, data: dict[str, Any], origins: Mapping[tuple[str, ...], str], file: str
    ) -> Settings:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = []
            for error in exc.errors():
                loc = tuple(str(part) for part in error["loc"])
                origin = next(
                    (origins[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origins),
                    file,
                )
                message = error["msg"].removeprefix("Value error, ")
                if error["type"] == "extra_forbidden":
                    message = "unknown setting (check its spelling)"
                elif error["type"] == "literal_error":
                    message = f"must be one of {error.get('ctx', {}).get('expected')}"
                key = ".".join(loc) or "settings"
                lines.append(f"{origin}: {key}: {message}")
            raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None

    @classmethod
    def for_sandboxes(
        cls, pc_info: Mapping[str, Any], sf_info: Mapping[str, Any], *, store_url: str
    ) -> Settings:
        """Working settings for the two sandboxes, from their startup JSON.

        Args:
            pc_info: `PartnerCenterSandbox.info()` (or `cosell sandbox up --json`'s
                `partner_center`).
            sf_info: `SalesforceSandbox.info()`.
            store_url: the store's database URL.

        Returns:
            Settings with the Partner Center refresh-token grant routed to the sandbox's Entra
            ID, and the Salesforce JWT bearer flow (every other flow's credentials set too);
            webhook callbacks signed by the sandbox are accepted (its `/cert/` location
            allowed, its CA trusted).
        """
        return cls.model_validate(
            {
                "partner_center": {
                    "auth": "refresh_token",
                    "tenant_id": pc_info["tenant_id"],
                    "client_id": pc_info["client_id"],
                    "client_secret": pc_info["client_secret"],
                    "refresh_token": pc_info["refresh_token"],
                    "username": pc_info.get("username"),
                    "password": pc_info.get("password"),
                    "referrals_url": pc_info["referrals_api"],
                    "webhooks_url": pc_info["webhooks_api"],
                    "route_to": pc_info["base_url"],
                },
                "salesforce": {
                    "auth": "jwt",
                    "consumer_key": sf_info["consumer_key"],
                    "consumer_secret": sf_info["consumer_secret"],
                    "username": sf_info["username"],
                    "password": sf_info["password"],
                    "security_token": sf_info["security_token"],
                    "refresh_token": sf_info["refresh_token"],
                    "private_key_file": sf_info["private_key_path"],
                    "login_url": sf_info["login_url"],
                    "token_url": sf_info["token_url"],
                    "api_version": sf_info["api_version"],
                    **(
                        {
                            "changes": "cdc",
                            "pubsub_endpoint": sf_info["pubsub_endpoint"],
                            "pubsub_tls": False,
                        }
                        if sf_info.get("pubsub_endpoint")
                        else {}
                    ),
                },
                "store": {"url": store_url},
                "server": {
                    "allowed_certificate_urls": [f"{pc_info['base_url'].rstrip('/')}/cert/"],
                    "trusted_ca_url": pc_info["ca_certificate_url"],
                },
            }
        )


_PATH_KEYS = {
    ("partner_center", "refresh_token_file"),
    ("salesforce", "refresh_token_file"),
    ("salesforce", "private_key_file"),
    ("sync", "mapping_file"),
    ("server", "trusted_ca_file"),
}


# Secrets that may come from a file instead (`<key>_file`: a Kubernetes or Docker secret).
# The refresh tokens have `refresh_token_file` already: the token file cosell keeps them in.
SECRET_FILE_KEYS = {
    "partner_center": ("client_secret", "password"),
    "salesforce": ("consumer_secret", "password", "security_token"),
    "alerts": ("urls",),
    "console": ("oidc_client_secret",),
}
# A secret is a line of text; a larger file is not one (and is not read into memory).
_MAX_SECRET_FILE_BYTES = 64 * 1024


def _read_secret_files(
    data: dict[str, Any], origins: dict[tuple[str, ...], str], *, base: Path
) -> None:
    """Replace each `<secret>_file` key with the file's content (stripped) as `<secret>`.

    Raises:
        ConfigError: both the secret and its file are set, or the file cannot be read; the
            message names the key and the file, never the content.
    """
    problems = []
    for section, keys in SECRET_FILE_KEYS.items():
        table = data.get(section)
        if not isinstance(table, dict):
            continue
        for key in keys:
            file_key = f"{key}_file"
            if file_key not in table:
                continue
            where = origins.get((section, file_key), "the settings file")
            raw = table.pop(file_key)
            if key in table:
                problems.append(
                    f"{where}: {section}.{file_key}: {section}.{key} is set too; set one of them"
                )
                continue
            path = Path(str(raw)).expanduser()
            if not path.is_absolute() and not where.startswith("environment variable"):
                path = base / path
            try:
                too_big = path.stat().st_size > _MAX_SECRET_FILE_BYTES
                value = "" if too_big else path.read_text("utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                problems.append(f"{where}: {section}.{file_key}: cannot read {path} ({reason})")
                continue
            if too_big:
                problems.append(f"{where}: {section}.{file_key}: {path} is larger than 64 KiB")
                continue
            if not value:
                problems.append(f"{where}: {section}.{file_key}: {path} is empty")
                continue
            table[key] = value
            origins[(section, key)] = f"{where} ({path})"
    if problems:
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems))


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    for section, key in _PATH_KEYS:
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), str):
            path = Path(table[key]).expanduser()
            table[key] = str(path if path.is_absolute() else base / path)
    store = data.get("store")
    if isinstance(store, dict) and isinstance(store.get("url"), str):
        store["url"] = _resolve_sqlite_url(store["url"], base)


# `sqlite:///relative.db` (three slashes) names a file relative to the working directory;
# four slashes, an absolute one. Captures: the scheme, the path, the query.
_SQLITE_URL = re.compile(r"(sqlite(?:\+\w+)?:///)([^?]*)(\?.*)?", re.DOTALL)


def _resolve_sqlite_url(url: str, base: Path) -> str:
    """A relative SQLite file in a settings file is beside the file, not in the working directory.

    So `cosell status --config /etc/cosell/cosell.toml` run from anywhere opens the store
    the service writes, instead of creating an empty one where it was run.
    """
    match = _SQLITE_URL.fullmatch(url.strip())
    if match is None:
        return url
    scheme, database, query = match.group(1), match.group(2), match.group(3) or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return url
    path = Path(database).expanduser()
    if path.is_absolute():
        return url
    return f"{scheme}{(base / path).resolve()}{query}"


def _keys(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    keys = []
    for key, value in data.items():
        keys.append((*prefix, key))
        if isinstance(value, Mapping):
            keys += _keys(value, (*prefix, key))
    return keys


def _env_keys(name: str) -> tuple[str, ...] | None:
    if not name.upper().startswith(ENV_PREFIX) or ENV_SEPARATOR not in name:
        return None
    parts = name[len(ENV_PREFIX) :].lower().split(ENV_SEPARATOR)
    return tuple(parts) if all(parts) else None
