"""`cosell init`: a commented cosell.toml that loads, and the default mapping beside it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from cosell.cli import app
from cosell.config import Settings
from cosell.mapping import load_mapping
from cosell.mapping.loader import default_mapping_text

runner = CliRunner()


def _init(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["init", *args])
    return result.exit_code, result.output


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^\[(\w+)\]\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_init_writes_a_commented_loadable_config_and_the_default_mapping(tmp_path: Path) -> None:
    status, output = _init("--dir", str(tmp_path / "conf"))
    assert status == 0, output
    config, mapping = tmp_path / "conf" / "cosell.toml", tmp_path / "conf" / "mapping.yaml"
    assert f"Wrote {config}" in output
    assert "cosell check" in output
    assert mapping.read_text("utf-8") == default_mapping_text()

    settings = Settings.load(config, environ={})
    assert settings.sync.mapping_file == mapping
    assert load_mapping(settings.sync.mapping_file).fields
    assert settings.partner_center.missing() == ["tenant_id", "client_id"]
    assert settings.salesforce.missing() == ["consumer_key", "username", "private_key_file"]


def test_every_key_of_every_section_is_there_with_a_comment(tmp_path: Path) -> None:
    _init("--dir", str(tmp_path))
    text = (tmp_path / "cosell.toml").read_text("utf-8")
    sections = _sections(text)
    assert list(sections) == list(Settings.model_fields)
    for name, field in Settings.model_fields.items():
        model = field.annotation
        assert model is not None
        body = sections[name]
        for key in model.model_fields:  # type: ignore[union-attr]
            line = re.search(rf"^(# )?{key}( =|:)", body, flags=re.MULTILINE)
            assert line, f"[{name}] {key} is not in the template"
            before = body[: line.start()].rstrip("\n").splitlines()
            assert before, f"[{name}] {key} has no comment"
            assert before[-1].startswith("#"), f"[{name}] {key} has no comment"
    assert "COSELL_PARTNER_CENTER__CLIENT_SECRET" in text
    assert "COSELL_SALESFORCE__CONSUMER_SECRET" in text
    assert "Referrals admin" in text
    assert "connected app" in text
    for secret in ("client_secret", "consumer_secret", "password", "security_token"):
        assert not re.search(rf"^{secret} =", text, flags=re.MULTILINE), secret


def test_filled_in_placeholders_give_complete_settings(tmp_path: Path) -> None:
    _init("--dir", str(tmp_path))
    config = tmp_path / "cosell.toml"
    filled = {
        "tenant_id": "contoso.onmicrosoft.com",
        "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e",
        "consumer_key": "3MVG9.key",
        "username": "cosell@contoso.com",
        "private_key_file": "cosell-jwt.key",
        "public_url": "https://cosell.contoso.com/webhooks/partner-center",
    }
    text = config.read_text("utf-8")
    salesforce = text.index("[salesforce]")  # username is a key of both sections: fill Salesforce's
    head, tail = text[:salesforce], text[salesforce:]
    for key, value in filled.items():
        pattern, replacement = rf'^# {key} = "[^"]*"$', f'{key} = "{value}"'
        if key == "username":
            tail, count = re.subn(pattern, replacement, tail, count=1, flags=re.MULTILINE)
        else:
            head, count = re.subn(pattern, replacement, head, count=1, flags=re.MULTILINE)
            if not count:
                tail, count = re.subn(pattern, replacement, tail, count=1, flags=re.MULTILINE)
        assert count == 1, key
    text = head + tail
    config.write_text(text, encoding="utf-8")
    tomllib.loads(text)
    settings = Settings.load(
        config,
        environ={
            "COSELL_PARTNER_CENTER__CLIENT_SECRET": "s3cret",
            "COSELL_PARTNER_CENTER__REFRESH_TOKEN": "r3fresh",
        },
    )
    assert settings.partner_center.missing() == []
    assert settings.salesforce.missing() == []
    assert settings.salesforce.private_key_file == tmp_path / "cosell-jwt.key"
    assert settings.server.public_url == filled["public_url"]


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    config = tmp_path / "cosell.toml"
    config.write_text("# mine\n", encoding="utf-8")
    status, output = _init("--dir", str(tmp_path))
    assert status == 1
    assert "already exist" in output
    assert "--force" in output
    assert config.read_text("utf-8") == "# mine\n"
    assert not (tmp_path / "mapping.yaml").exists()

    status, output = _init("--dir", str(tmp_path), "--force")
    assert status == 0, output
    assert config.read_text("utf-8").startswith("# cosell settings")
    assert (tmp_path / "mapping.yaml").read_text("utf-8") == default_mapping_text()
