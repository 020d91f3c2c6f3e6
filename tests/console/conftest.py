"""Fixtures of the console's tests: a SQLite store with a few deals, users, a recording notify."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from console_kit import (
    FAST_SCRYPT,
    OPERATOR_PASSWORD,
    VIEWER_PASSWORD,
    Deals,
    Notified,
    console_app,
    seed,
)
from starlette.testclient import TestClient

from cosell.clock import ManualClock
from cosell.server.console.auth import Role, set_password
from cosell.store import Store


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'cosell.db'}", clock=clock) as opened:
        yield opened


@pytest.fixture
def deals(store: Store, clock: ManualClock) -> Deals:
    return seed(store, clock)


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "console-users.json"
    set_password(path, "admin", OPERATOR_PASSWORD, Role.OPERATOR, n=FAST_SCRYPT)
    set_password(path, "reader", VIEWER_PASSWORD, Role.VIEWER, n=FAST_SCRYPT)
    return path


@pytest.fixture
def notified() -> Notified:
    return Notified()


@pytest.fixture
def client(
    store: Store, clock: ManualClock, users_file: Path, notified: Notified
) -> Iterator[TestClient]:
    with TestClient(console_app(store, clock, users_file, notified), follow_redirects=False) as tc:
        yield tc
