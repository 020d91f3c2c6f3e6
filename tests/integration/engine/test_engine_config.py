"""The engine's configuration helpers: system database URL, schedules, DBOS logging."""

from __future__ import annotations

import logging

import pytest

from cosell.sync.engine.config import (
    EngineError,
    configure_dbos_logging,
    cron_for,
    system_database_url,
)


def test_the_system_database_sits_next_to_a_sqlite_store() -> None:
    assert system_database_url("sqlite:////var/lib/cosell/cosell.db") == (
        "sqlite:////var/lib/cosell/cosell-dbos.sqlite"
    )
    assert system_database_url("sqlite:///cosell.db") == "sqlite:///cosell-dbos.sqlite"


def test_a_postgresql_store_shares_its_database() -> None:
    url = system_database_url("postgresql+psycopg://cosell:s3cret@db:5432/cosell")
    assert url == "postgresql://cosell:s3cret@db:5432/cosell"


def test_stores_the_engine_cannot_share_are_refused_with_advice() -> None:
    with pytest.raises(EngineError, match="use a file"):
        system_database_url("sqlite://")
    with pytest.raises(EngineError, match="SQLite or PostgreSQL"):
        system_database_url("mysql://db/cosell")


@pytest.mark.parametrize(
    ("seconds", "cron"),
    [
        (30, "*/30 * * * * *"),
        (5, "*/5 * * * * *"),
        (60, "0 */1 * * * *"),
        (900, "0 */15 * * * *"),
        (3600, "0 0 */1 * * *"),
        (21600, "0 0 */6 * * *"),
    ],
)
def test_intervals_become_clock_aligned_crons(seconds: int, cron: str) -> None:
    assert cron_for(seconds, "poll_interval_seconds") == cron


@pytest.mark.parametrize("seconds", [0, 7, 90, 4000, 7 * 3600])
def test_uneven_intervals_are_refused_with_good_ones(seconds: int) -> None:
    with pytest.raises(EngineError, match="poll_interval_seconds"):
        cron_for(seconds, "poll_interval_seconds")


def test_dbos_logs_go_through_logging_at_warning_with_passwords_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_dbos_logging()
    configure_dbos_logging()  # idempotent
    logger = logging.getLogger("dbos")
    assert logger.level == logging.WARNING
    assert logger.propagate
    assert sum(isinstance(h, logging.NullHandler) for h in logger.handlers) == 1
    with caplog.at_level(logging.INFO):  # the root takes INFO; the dbos logger stops it
        logger.info("launched")
        logger.warning("cannot reach %s", "postgresql://cosell:s3cret@db:5432/cosell")
    assert [r.getMessage() for r in caplog.records] == [
        "cannot reach postgresql://cosell:***@db:5432/cosell"
    ]
