"""Settings: cosell.toml, COSELL_* overlays, clear errors, secrets masked, the sandboxes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from cosell.clock import ManualClock
from cosell.config import ConfigError, Settings
from cosell.salesforce.auth import (
    ClientCredentialsFlow,
    JwtBearerFlow,
    PasswordFlow,
    RefreshTokenFlow,
)

TOML = """\
[partner_center]
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "pc-secret"
refresh_token_file = "secrets/pc-refresh-token"

[salesforce]
auth = "client_credentials"
consumer_key = "3MVG9key"
consumer_secret = "sf-secret"
login_url = "https://test.salesforce.com/"
token_url = "https://contoso.my.salesforce.com"
api_version = "v61.0"

[store]
url = "postgresql+psycopg://cosell@db/cosell"

[sync]
mapping_file = "mapping.yaml"
poll_interval_seconds = 15
lead_sync = true
"""


def write(tmp_path: Path, text: str = TOML) -> Path:
    path = tmp_path / "cosell.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_settings_from_toml(tmp_path: Path) -> None:
    settings = Settings.load(write(tmp_path), environ={})
    pc = settings.partner_center
    assert pc.tenant_id == "contoso.onmicrosoft.com"
    assert pc.client_secret == SecretStr("pc-secret")
    assert pc.refresh_token_file == tmp_path / "secrets" / "pc-refresh-token"
    assert pc.api_base_url == "https://api.partner.microsoft.com/v1.0/engagements"
    assert pc.missing() == []
    sf = settings.salesforce
    assert (sf.auth, sf.login_url, sf.api_version) == (
        "client_credentials",
        "https://test.salesforce.com",
        "61.0",
    )
    assert settings.store.url == "postgresql+psycopg://cosell@db/cosell"
    assert settings.sync.mapping_file == tmp_path / "mapping.yaml"
    assert (settings.sync.poll_interval_seconds, settings.sync.sweep_interval_seconds) == (15, 3600)
    assert settings.sync.lead_sync is True
    assert settings.sync.dry_run is False


def test_environment_overrides_the_file_and_fills_what_it_lacks(tmp_path: Path) -> None:
    environ = {
        "COSELL_SALESFORCE__CONSUMER_SECRET": "from-env",
        "cosell_sync__poll_interval_seconds": "5",
        "COSELL_SYNC__DRY_RUN": "true",
        "COSELL_PARTNER_CENTER__PARTNER_ORG_ID": "org-1",
        "COSELL_WORKER_ID": "worker-2",  # not a setting: no double underscore
        "COSELL_TEST_POSTGRES_URL": "postgresql://x",
        "HOME": "/root",
    }
    settings = Settings.load(write(tmp_path), environ=environ)
    assert settings.salesforce.consumer_secret == SecretStr("from-env")
    assert settings.sync.poll_interval_seconds == 5
    assert settings.sync.dry_run is True
    assert settings.partner_center.partner_org_id == "org-1"


def test_a_missing_default_file_means_defaults_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.load(environ={"COSELL_STORE__URL": "sqlite:///x.db"})
    assert settings.store.url == "sqlite:///x.db"
    assert settings.salesforce.auth == "jwt"
    assert settings.salesforce.login_url == "https://login.salesforce.com"
    assert settings.partner_center.referrals_url.endswith("/v1.0/engagements/referrals")
    assert settings.sync.mapping_file is None


def test_the_default_file_is_read_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert Settings.load(environ={}).salesforce.consumer_key == "3MVG9key"


def test_an_explicit_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: no such settings file"):
        Settings.load(tmp_path / "missing.toml", environ={})


def test_bad_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[store]\nurl = \n")
    with pytest.raises(ConfigError) as caught:
        Settings.load(path, environ={})
    assert str(caught.value).startswith(f"{path}: not valid TOML:")
    assert "line 2" in str(caught.value)


def test_every_bad_value_is_named_with_its_key_and_source(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[salesforce]\nauth = "magic"\napi_version = "sixty"\n'
        "[sync]\nsweep_interval_seconds = 0\ncolour = 1\n[extra]\nx = 1\n",
    )
    environ = {
        "COSELL_PARTNER_CENTER__REFERRALS_URL": "not a url",
        "COSELL_SYNC__LEAD_SYNC": "perhaps",
        "COSELL_SALESFORCE__CONSUMER_SECRT": "typo",
    }
    with pytest.raises(ConfigError) as caught:
        Settings.load(path, environ=environ)
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid settings:"
    assert sorted(line.strip() for line in lines[1:]) == sorted(
        [
            "environment variable COSELL_PARTNER_CENTER__REFERRALS_URL: "
            "partner_center.referrals_url: 'not a url' is not an http(s) URL",
            f"{path}: salesforce.auth: must be one of 'jwt', 'client_credentials', "
            "'refresh_token' or 'password'",
            f"{path}: salesforce.api_version: 'sixty' is not an API version such as '62.0'",
            "environment variable COSELL_SALESFORCE__CONSUMER_SECRT: "
            "salesforce.consumer_secrt: unknown setting (check its spelling)",
            f"{path}: sync.sweep_interval_seconds: Input should be greater than 0",
            "environment variable COSELL_SYNC__LEAD_SYNC: sync.lead_sync: "
            "Input should be a valid boolean, unable to interpret input",
            f"{path}: sync.colour: unknown setting (check its spelling)",
            f"{path}: extra: unknown setting (check its spelling)",
        ]
    )


def test_secrets_never_show(tmp_path: Path) -> None:
    settings = Settings.load(write(tmp_path), environ={"COSELL_SALESFORCE__PASSWORD": "hunter2"})
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in ("pc-secret", "sf-secret", "hunter2"):
        assert secret not in shown


def test_missing_credentials_are_named_when_a_flow_is_built() -> None:
    settings = Settings.load(Path("/dev/null"), environ={"COSELL_SALESFORCE__AUTH": "password"})
    assert settings.salesforce.missing() == [
        "consumer_key",
        "consumer_secret",
        "username",
        "password",
    ]
    with pytest.raises(ConfigError, match=r"auth = 'password' needs salesforce\.consumer_key, "):
        settings.salesforce.auth_flow()
    assert settings.partner_center.missing() == ["tenant_id", "client_id", "refresh_token"]


def test_auth_flows_from_settings(tmp_path: Path) -> None:
    key = tmp_path / "server.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n", encoding="utf-8")
    base = {
        "COSELL_SALESFORCE__CONSUMER_KEY": "ck",
        "COSELL_SALESFORCE__CONSUMER_SECRET": "cs",
        "COSELL_SALESFORCE__USERNAME": "integration@contoso.com",
        "COSELL_SALESFORCE__PASSWORD": "pw",
        "COSELL_SALESFORCE__SECURITY_TOKEN": "tok",
        "COSELL_SALESFORCE__REFRESH_TOKEN": "rt",
        "COSELL_SALESFORCE__PRIVATE_KEY_FILE": str(key),
        "COSELL_SALESFORCE__TOKEN_URL": "https://contoso.my.salesforce.com",
    }
    clock = ManualClock()

    def flow(auth: str) -> object:
        environ = {**base, "COSELL_SALESFORCE__AUTH": auth}
        return Settings.load(Path("/dev/null"), environ=environ).salesforce.auth_flow(clock=clock)

    jwt = flow("jwt")
    assert isinstance(jwt, JwtBearerFlow)
    assert (jwt.consumer_key, jwt.username, jwt.login_url) == (
        "ck",
        "integration@contoso.com",
        "https://login.salesforce.com",
    )
    assert jwt.clock is clock
    cc = flow("client_credentials")
    assert isinstance(cc, ClientCredentialsFlow)
    assert (cc.consumer_secret, cc.token_url) == ("cs", "https://contoso.my.salesforce.com")
    rt = flow("refresh_token")
    assert isinstance(rt, RefreshTokenFlow)
    assert rt.refresh_token == "rt"
    pw = flow("password")
    assert isinstance(pw, PasswordFlow)
    assert (pw.password, pw.security_token) == ("pw", "tok")
    key.unlink()
    with pytest.raises(ConfigError, match="private_key_file: cannot read"):
        flow("jwt")


def test_for_sandboxes_uses_the_startup_json(tmp_path: Path) -> None:
    from cosell_sandbox.partnercenter.app import PartnerCenterSandbox
    from cosell_sandbox.salesforce.app import SalesforceSandbox, SandboxOptions

    clock = ManualClock()
    pc = PartnerCenterSandbox(base_url="http://pc.test", clock=clock)
    sf = SalesforceSandbox(
        base_url="http://sf.test", clock=clock, options=SandboxOptions(seed=1, key_dir=tmp_path)
    )
    try:
        pc_info = json.loads(json.dumps(pc.info()))  # as `cosell sandbox up --json` prints it
        sf_info = json.loads(json.dumps(sf.info()))
        settings = Settings.for_sandboxes(pc_info, sf_info, store_url="sqlite:///s.db")
    finally:
        sf.close()
    assert settings.store.url == "sqlite:///s.db"
    pc_settings = settings.partner_center
    assert pc_settings.missing() == []
    assert pc_settings.route_to == "http://pc.test"
    assert pc_settings.referrals_url == pc_info["referrals_api"]
    assert pc_settings.api_base_url == pc_info["referrals_api"].removesuffix("/referrals")
    assert pc_settings.refresh_token == SecretStr(pc_info["refresh_token"])
    sf_settings = settings.salesforce
    assert sf_settings.auth == "jwt"
    assert sf_settings.missing() == []
    assert sf_settings.login_url == "http://sf.test"
    assert sf_settings.api_version == sf_info["api_version"]
    flow = sf_settings.auth_flow(clock=clock)
    assert isinstance(flow, JwtBearerFlow)
    assert flow.assertion()  # the sandbox's private key signs


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("sqlite:///./cosell.db", "sqlite:///{folder}/cosell.db"),
        ("sqlite:///data/cosell.db?timeout=5", "sqlite:///{folder}/data/cosell.db?timeout=5"),
        ("sqlite+pysqlite:///cosell.db", "sqlite+pysqlite:///{folder}/cosell.db"),
        ("sqlite:////var/lib/cosell.db", "sqlite:////var/lib/cosell.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_a_relative_sqlite_store_in_a_settings_file_is_beside_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str, expected: str
) -> None:
    # `cosell status --config …` run elsewhere once created an empty store where it was run.
    folder = tmp_path / "etc"
    folder.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = folder / "cosell.toml"
    path.write_text(f'[store]\nurl = "{written}"\n', encoding="utf-8")
    settings = Settings.load(path, environ={})
    assert settings.store.url == expected.format(folder=folder.resolve())
    from_environment = Settings.load(path, environ={"COSELL_STORE__URL": "sqlite:///./x.db"})
    assert from_environment.store.url == "sqlite:///./x.db"


def test_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pc").write_text("pc-from-file\n", encoding="utf-8")
    mounted = tmp_path / "run-secrets-sf"
    mounted.write_text("sf-from-file", encoding="utf-8")
    text = TOML.replace('client_secret = "pc-secret"', 'client_secret_file = "secrets/pc"')
    text = text.replace('consumer_secret = "sf-secret"\n', "")
    environ = {"COSELL_SALESFORCE__CONSUMER_SECRET_FILE": str(mounted)}
    settings = Settings.load(write(tmp_path, text), environ=environ)
    assert settings.partner_center.client_secret == SecretStr("pc-from-file")
    assert settings.salesforce.consumer_secret == SecretStr("sf-from-file")
    assert "from-file" not in repr(settings)


def test_secret_files_that_cannot_be_used_say_which_key(tmp_path: Path) -> None:
    text = TOML.replace('client_secret = "pc-secret"', 'client_secret_file = "missing"')
    with pytest.raises(ConfigError, match=r"partner_center\.client_secret_file: cannot read"):
        Settings.load(write(tmp_path, text), environ={})

    both = {"COSELL_SALESFORCE__CONSUMER_SECRET_FILE": str(tmp_path / "cosell.toml")}
    with pytest.raises(ConfigError, match="consumer_secret is set too") as caught:
        Settings.load(write(tmp_path), environ=both)
    assert "environment variable COSELL_SALESFORCE__CONSUMER_SECRET_FILE" in str(caught.value)

    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    text = TOML.replace('client_secret = "pc-secret"', 'client_secret_file = "empty"')
    with pytest.raises(ConfigError, match="is empty"):
        Settings.load(write(tmp_path, text), environ={})


def test_salesforce_changes_default_to_polling_and_the_channel_is_checked() -> None:
    from cosell.config import SalesforceSettings

    settings = SalesforceSettings()
    assert settings.changes == "poll"
    assert settings.channel == "/data/ChangeEvents"
    assert SalesforceSettings(changes="cdc", channel="/data/Cosell__chn").channel.endswith("__chn")
    with pytest.raises(ValueError, match="not a change event channel"):
        SalesforceSettings(channel="ChangeEvents")
