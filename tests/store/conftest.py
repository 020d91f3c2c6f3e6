"""Fixtures of the store suite: every test runs on SQLite and on PostgreSQL.

On PostgreSQL the suite shares one session database (the `postgres_url` fixture) and isolates
tests from each other the way production isolates connections: each test gets its own tenant
(`store`), or its own schema when it needs an empty database (`empty_url`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from cosell.clock import ManualClock
from cosell.store import Store

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated-or-not database shared by the test's stores (SQLite: a file of this test)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'cosell.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def tenant(backend: str) -> str:
    return "default" if backend == "sqlite" else f"test_{secrets.token_hex(6)}"


@pytest.fixture
def store(database_url: str, clock: ManualClock, tenant: str) -> Iterator[Store]:
    store = Store.open(database_url, clock=clock, tenant=tenant)
    yield store
    store.close()


@pytest.fixture
def empty_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = str(request.getfixturevalue("postgres_url"))
    schema = f"s_{secrets.token_hex(6)}"
    admin = sa.create_engine(url, poolclass=sa.NullPool)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    yield f"{url}?options={quote(f'-csearch_path={schema}')}"
    with admin.begin() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()
