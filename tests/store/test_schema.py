"""Migrations, the schema they build, and opening databases (URLs, errors, SQLite settings)."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cosell.clock import ManualClock
from cosell.store import SchemaVersionError, Store, StoreError, StoreUnavailableError
from cosell.store.database import create_engine, normalise_url
from cosell.store.schema import (
    HEAD_REVISION,
    alembic_config,
    check,
    current_revision,
    head_revision,
    upgrade,
)
from cosell.store.tables import VERSION_TABLE, metadata

TABLES = {
    "links",
    "snapshots",
    "audit",
    "conflicts",
    "cursors",
    "inbox",
    "create_intents",
    "leases",
    "wakeups",
    "pauses",
    "held_keys",
    "circuits",
}


def _engine(url: str) -> sa.Engine:
    return create_engine(normalise_url(url))


def _schema_differences(url: str) -> list[object]:
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_tables_of_the_metadata(empty_url: str) -> None:
    engine = _engine(empty_url)
    try:
        result = upgrade(engine)
        assert (result.before, result.after) == (None, head_revision())
        assert set(sa.inspect(engine).get_table_names()) == TABLES | {VERSION_TABLE}
    finally:
        engine.dispose()
    assert _schema_differences(empty_url) == []


def test_the_comparison_sees_a_difference(empty_url: str) -> None:
    # The schema test above can fail: a column the migrations lack is reported.
    engine = _engine(empty_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE links ADD COLUMN extra VARCHAR(10)")
    finally:
        engine.dispose()
    differences = _schema_differences(empty_url)
    assert [difference[0] for difference in differences] == ["remove_column"]  # type: ignore[index]


def test_upgrade_again_is_a_no_op(empty_url: str, clock: ManualClock) -> None:
    with Store.open(empty_url, clock=clock) as store:
        link = store.create_link(sobject="Opportunity", referral_id="r1")
    engine = _engine(empty_url)
    try:
        result = upgrade(engine)
        assert result.before == result.after == head_revision()
    finally:
        engine.dispose()
    with Store.open(empty_url, clock=clock) as store:
        assert store.links() == [link]


def test_downgrade_to_nothing_and_up_again(empty_url: str) -> None:
    engine = _engine(empty_url)
    try:
        upgrade(engine)
        with engine.execution_options(cosell_write=True).begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert set(sa.inspect(engine).get_table_names()) <= {VERSION_TABLE}
        assert upgrade(engine).before is None
    finally:
        engine.dispose()
    assert _schema_differences(empty_url) == []


def test_workers_starting_at_once_migrate_once(empty_url: str, clock: ManualClock) -> None:
    workers = 4  # several processes' worth of concurrent Store.open calls on an empty database

    def open_and_use(n: int) -> str:
        with Store.open(empty_url, clock=clock) as store:
            return store.create_link(sobject="Opportunity", referral_id=f"r{n}").id

    with ThreadPoolExecutor(max_workers=workers) as pool:
        ids = list(pool.map(open_and_use, range(workers)))
    assert len(set(ids)) == workers
    assert _schema_differences(empty_url) == []


def test_open_without_migrating_an_empty_database_says_to_upgrade(
    empty_url: str, clock: ManualClock
) -> None:
    with pytest.raises(SchemaVersionError, match=r"has no cosell tables.*run `cosell db upgrade`"):
        Store.open(empty_url, clock=clock, migrate=False)


def test_a_database_from_a_newer_cosell_is_refused(empty_url: str, clock: ManualClock) -> None:
    Store.open(empty_url, clock=clock).close()
    engine = _engine(empty_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
            assert current_revision(connection) == "9999"
    finally:
        engine.dispose()
    for migrate in (True, False):
        with pytest.raises(
            SchemaVersionError, match=r"revision '9999'.*newer cosell.*Upgrade cosell"
        ):
            Store.open(empty_url, clock=clock, migrate=migrate)


def test_the_head_revision_constant_is_the_head_of_the_migration_scripts() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_the_version_is_read_as_alembic_reads_it(empty_url: str) -> None:
    engine = _engine(empty_url)
    try:
        for step in (None, "0001", "head"):
            if step is not None:
                config = alembic_config()
                with engine.begin() as connection:
                    config.attributes["connection"] = connection
                    command.upgrade(config, step)
            with engine.connect() as connection:
                context = MigrationContext.configure(
                    connection, opts={"version_table": VERSION_TABLE}
                )
                assert current_revision(connection) == context.get_current_revision()
    finally:
        engine.dispose()


def test_checking_a_store_behind_the_head_says_to_upgrade(empty_url: str) -> None:
    engine = _engine(empty_url)
    try:
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
        with pytest.raises(
            SchemaVersionError,
            match=rf"at revision '0001', and this cosell needs '{HEAD_REVISION}'.*cosell db upgrade",
        ):
            check(engine)
        upgrade(engine)
        assert check(engine) == HEAD_REVISION
    finally:
        engine.dispose()


def test_a_version_table_with_several_revisions_is_refused(empty_url: str) -> None:
    engine = _engine(empty_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(sa.text(f"INSERT INTO {VERSION_TABLE} VALUES ('0001')"))
        with pytest.raises(
            SchemaVersionError, match=rf"several schema revisions \(0001, {HEAD_REVISION}\)"
        ):
            check(engine)
    finally:
        engine.dispose()


# -- URLs and connection errors ----------------------------------------------------------------


def test_the_default_store_is_cosell_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> None:
    monkeypatch.chdir(tmp_path)
    with Store.open(clock=clock) as store:
        assert store.url.render_as_string() == "sqlite:///./cosell.db"
        store.set_cursor("c", "v")
    assert (tmp_path / "cosell.db").is_file()


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgres://u:p@h/d", "postgresql+psycopg://u:p@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///./x.db", "sqlite:///./x.db"),
        ("  sqlite:////abs/x.db ", "sqlite:////abs/x.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_urls_are_normalised(given: str, normalised: str) -> None:
    assert normalise_url(given).render_as_string(hide_password=False) == normalised


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql://u:hunter2@h/d", "names a 'mysql' database"),
        ("postgresql+asyncpg://u:hunter2@h/d", "driver 'asyncpg', which cosell does not ship"),
        ("sqlite+aiosqlite:///x.db", "driver 'aiosqlite'"),
        ("not a url :hunter2@", "is not a database URL"),
        ("postgresql://u:hunter2@h:port/d", "is not a database URL"),
        ("cosell.db", "is not a database URL"),
    ],
)
def test_bad_urls_say_what_to_write(given: str, message: str, clock: ManualClock) -> None:
    with pytest.raises(StoreError, match=message) as raised:
        Store.open(given, clock=clock)
    assert "hunter2" not in str(raised.value)


def test_an_unreachable_postgresql_server(clock: ManualClock) -> None:
    with pytest.raises(StoreUnavailableError, match="Check that the server is running") as raised:
        Store.open("postgresql://cosell:hunter2@127.0.0.1:1/cosell", clock=clock)
    assert "hunter2" not in str(raised.value)
    assert "postgresql+psycopg://cosell:***@127.0.0.1:1/cosell" in str(raised.value)


def test_a_sqlite_file_in_a_missing_directory(tmp_path: Path, clock: ManualClock) -> None:
    with pytest.raises(StoreUnavailableError, match="Check that the directory exists"):
        Store.open(f"sqlite:///{tmp_path / 'missing' / 'cosell.db'}", clock=clock)


def test_sqlite_settings(tmp_path: Path, clock: ManualClock) -> None:
    with (
        Store.open(f"sqlite:///{tmp_path / 'c.db'}", clock=clock) as store,
        store.engine.connect() as connection,
    ):
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA busy_timeout").scalar() == 30_000


def test_in_memory_sqlite_works_for_one_store(clock: ManualClock) -> None:
    with Store.open("sqlite://", clock=clock) as store:
        link = store.create_link(sobject="Opportunity", referral_id="r1")
        assert store.get_link(link.id) == link


def test_deleting_a_link_row_cascades(store: Store) -> None:
    # Foreign keys are enforced on both databases: dependent rows go with their link.
    link = store.create_link(sobject="Opportunity", referral_id="r1")
    store.save_snapshot(link.id, {"a": "b"})
    store.record_audit(link.id, "m")
    store.record_conflict(
        link.id, field="f", partner_center="a", salesforce="b", base=None, winner="salesforce"
    )
    store.record_create_intent(link.id, side="salesforce", external_reference="r1")
    with store.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM links WHERE id = :id"), {"id": link.id})
    assert store.snapshot(link.id) is None
    assert store.audit(link.id) == []
    assert store.conflicts(link.id) == []
    assert store.create_intent(link.id) is None


def test_details_that_json_cannot_hold_fail_before_writing(store: Store) -> None:
    link = store.create_link(sobject="Opportunity", referral_id="r1")
    with pytest.raises(TypeError, match="audit details must be JSON: object cannot be stored"):
        store.record_audit(link.id, "m", details={"x": object()})
    assert store.audit(link.id) == []


@pytest.mark.postgres
def test_a_missing_postgresql_database(postgres_url: str, clock: ManualClock) -> None:
    missing = sa.make_url(postgres_url).set(database="cosell_no_such_database")
    with pytest.raises(StoreUnavailableError, match="that the database exists"):
        Store.open(missing.render_as_string(hide_password=False), clock=clock)


@pytest.mark.postgres
def test_a_user_who_may_not_create_tables(postgres_url: str, clock: ManualClock) -> None:
    role = f"cosell_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(postgres_url, poolclass=sa.NullPool)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
    try:
        url = sa.make_url(postgres_url).set(username=role, password=None)
        with pytest.raises(StoreError, match=r"refused cosell's schema migration.*permission"):
            Store.open(url.render_as_string(hide_password=False), clock=clock)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP ROLE "{role}"')
        admin.dispose()
