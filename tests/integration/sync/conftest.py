"""Fixtures of the sync integration tests: `world` (see `sync_world.World`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sync_world import World, build_world


@pytest.fixture(scope="session")
def sf_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One JWT key pair for the whole run: making one per test costs a fifth of a second."""
    return tmp_path_factory.mktemp("sf-keys")


@pytest.fixture
async def world(tmp_path: Path, sf_key_dir: Path) -> AsyncIterator[World]:
    async with build_world(tmp_path, sf_key_dir) as built:
        yield built
