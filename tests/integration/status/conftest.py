"""Fixtures of the status and audit tests: `world`, both sandboxes in process (W1's `World`)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# W1's World lives beside the sync integration tests; the engine tests' kit builds one.
_INTEGRATION = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_INTEGRATION / "sync"))
sys.path.insert(0, str(_INTEGRATION / "engine"))

from engine_kit import sandbox_world  # noqa: E402
from sync_world import World  # noqa: E402


@pytest.fixture(scope="session")
def status_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Salesforce JWT key pair for the status tests."""
    return tmp_path_factory.mktemp("status-sf-keys")


@pytest.fixture
async def world(tmp_path: Path, status_key_dir: Path) -> AsyncIterator[World]:
    async with sandbox_world(tmp_path, status_key_dir) as built:
        yield built
