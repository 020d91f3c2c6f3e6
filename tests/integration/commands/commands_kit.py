"""Helpers of the command tests: the served sandboxes and settings files."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Served:
    """The served sandboxes and the cosell.toml `--write-config` wrote for them."""

    info: dict[str, Any]
    config: Path

    @property
    def pc(self) -> dict[str, Any]:
        """The Partner Center sandbox's startup JSON."""
        return dict(self.info["partner_center"])

    @property
    def sf(self) -> dict[str, Any]:
        """The Salesforce sandbox's startup JSON."""
        return dict(self.info["salesforce"])

    def settings_data(self) -> dict[str, Any]:
        """The written settings, parsed."""
        return tomllib.loads(self.config.read_text("utf-8"))

    def delete_registration(self) -> None:
        """No webhook registration (the sandbox's control API)."""
        response = httpx.delete(f"{self.pc['control_api']}/webhooks/registration", timeout=10)
        assert response.status_code == 204, response.text


def toml_text(data: dict[str, Any]) -> str:
    """Settings as TOML (strings, numbers, booleans and lists of strings are all we write)."""
    lines = []
    for section, keys in data.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in keys.items())
        lines.append("")
    return "\n".join(lines)


def write_settings(path: Path, data: dict[str, Any]) -> Path:
    """Write `data` as a cosell.toml at `path`; the path."""
    path.write_text(toml_text(data), encoding="utf-8")
    return path
