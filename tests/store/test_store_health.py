"""The store is watched: a deleted or replaced SQLite file and a full disk are reported."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cosell.clock import ManualClock
from cosell.store import Store, StoreUnavailableError
from cosell.store.store import WRITE_FAILURE_SECONDS


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cosell.db"


@pytest.fixture
def store(path: Path, clock: ManualClock) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{path}", clock=clock)
    yield opened
    opened.close()


def _record(store: Store, event_id: str) -> list[bool]:
    return store.record_events(source="partner-center", events=[(event_id, "referral:r1", b"{}")])


def test_a_healthy_store_says_so(store: Store) -> None:
    assert store.health() == "sqlite reachable and writable"


def test_a_deleted_file_refuses_writes_instead_of_writing_into_the_void(
    store: Store, path: Path
) -> None:
    # The attack run: the file deleted under the running service, which kept writing to the
    # unlinked file; after a restart the store was empty.
    _record(store, "before")
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    with pytest.raises(StoreUnavailableError, match="was deleted while cosell had it open"):
        _record(store, "after")
    with pytest.raises(StoreUnavailableError, match="Restore the file"):
        store.health()


def test_a_replaced_file_refuses_writes(store: Store, path: Path) -> None:
    _record(store, "before")
    copy = path.with_name("copy.db")
    copy.write_bytes(path.read_bytes())
    os.replace(copy, path)
    with pytest.raises(StoreUnavailableError, match="replaced by another file"):
        _record(store, "after")
    with pytest.raises(StoreUnavailableError, match="replaced"):
        store.health()


def test_a_full_disk_makes_the_store_unhealthy_until_a_write_succeeds(
    store: Store, clock: ManualClock
) -> None:
    # SQLite's max_page_count gives the very error a full disk does: "database or disk is full".
    store.engine.dispose()
    limit = {"pages": 0}

    @sa.event.listens_for(store.engine, "connect")
    def _cap(connection: sqlite3.Connection, _record: object) -> None:
        if limit["pages"]:
            connection.execute(f"PRAGMA max_page_count={limit['pages']}")

    with store.engine.connect() as connection:
        limit["pages"] = int(connection.exec_driver_sql("PRAGMA page_count").scalar_one())
    store.engine.dispose()
    big = b"x" * 200_000
    with pytest.raises(StoreUnavailableError, match="database or disk is full"):
        store.record_events(source="partner-center", events=[("big", "referral:r1", big)])
    with pytest.raises(
        StoreUnavailableError, match=r"the last write failed 0 s ago.*disk is full.*Free space"
    ):
        store.health()
    clock.advance(WRITE_FAILURE_SECONDS / 2)
    with pytest.raises(StoreUnavailableError, match="disk is full"):
        store.health()
    limit["pages"] = 0
    store.engine.dispose()
    assert store.record_events(source="partner-center", events=[("big", "referral:r1", big)]) == [
        True
    ]
    assert store.health() == "sqlite reachable and writable"


def test_an_old_write_failure_no_longer_counts(store: Store, clock: ManualClock) -> None:
    store._write_failure = ("cannot open the SQLite store: disk I/O error", clock.monotonic())
    with pytest.raises(StoreUnavailableError, match="disk I/O error"):
        store.health()
    clock.advance(WRITE_FAILURE_SECONDS)
    assert store.health() == "sqlite reachable and writable"


def test_check_writable_writes_nothing_and_fails_on_a_read_only_database(store: Store) -> None:
    store.check_writable()
    assert store.cursor("cosell check: write probe") is None  # rolled back
    store.engine.dispose()

    @sa.event.listens_for(store.engine, "connect")
    def _read_only(connection: sqlite3.Connection, _record: object) -> None:
        connection.execute("PRAGMA query_only=ON")  # as a read-only file does, even for root

    with pytest.raises(StoreUnavailableError, match="readonly"):
        store.check_writable()
