"""Fixtures shared by every test."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

POSTGRES_URL_VARIABLE = "COSELL_TEST_POSTGRES_URL"
POSTGRES_SKIP_REASON = (
    "COSELL_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server (CI sets it)"
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session, dropped at the end.

    Created as `cosell_test_<hex>` on the server named by COSELL_TEST_POSTGRES_URL (any
    database on it: the fixture connects there only to create and drop its own). Yields a
    `postgresql+psycopg://` URL. Skips the test when the variable is unset.
    """
    server = os.environ.get(POSTGRES_URL_VARIABLE)
    if not server:
        pytest.skip(POSTGRES_SKIP_REASON)
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    admin_url = make_url(server).set(drivername="postgresql+psycopg")
    name = f"cosell_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as error:
        admin.dispose()
        pytest.fail(f"{POSTGRES_URL_VARIABLE}={admin_url.render_as_string()} is unusable: {error}")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


@pytest.fixture(autouse=True)
def _structlog_as_found() -> Iterator[None]:
    """Leave structlog's configuration as the test found it.

    `structlog.testing.capture_logs` (and `cosell serve`'s own setup) configure structlog for
    the whole process; a later command test would then find it "configured" and print the
    clients' info lines into its report. No test depends on another test's leftovers.
    """
    import structlog

    configured = structlog.is_configured()
    yield
    if not configured and structlog.is_configured():
        structlog.reset_defaults()
