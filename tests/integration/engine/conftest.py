"""Fixtures of the engine tests; helpers are in `engine_kit` (and W1's `sync_world`)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

# W1's World (both sandboxes in process) lives beside the sync integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sync"))

from engine_kit import sandbox_world
from sync_world import World


@pytest.fixture(scope="session")
def engine_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Salesforce JWT key pair for the engine tests."""
    return tmp_path_factory.mktemp("engine-sf-keys")


@pytest.fixture
async def world(tmp_path: Path, engine_key_dir: Path) -> AsyncIterator[World]:
    async with sandbox_world(tmp_path, engine_key_dir) as built:
        yield built


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Both sandboxes served on loopback by `cosell sandbox up` in a subprocess."""
    state = tmp_path_factory.mktemp("served-sandboxes")
    command = [sys.executable, "-m", "cosell.cli", "sandbox", "up", "--json"]
    command += ["--pc-port", "0", "--sf-port", "0", "--seed", "5", "--data-dir", str(state)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            yield json.loads(proc.stdout.readline())
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def engine_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test module (store and DBOS schema), dropped after.

    Like the suite's `postgres_url`, but per module: each engine module launches its own DBOS
    and must not see another module's workflows.
    """
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    server = os.environ.get("COSELL_TEST_POSTGRES_URL")
    if not server:
        pytest.skip(
            "COSELL_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server (CI sets it)"
        )
    admin_url = make_url(server).set(drivername="postgresql+psycopg")
    name = f"cosell_engine_{secrets.token_hex(6)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
