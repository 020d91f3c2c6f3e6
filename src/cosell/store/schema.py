"""Running the store's migrations: on start (`Store.open(migrate=True)`) and by `cosell db upgrade`.

The Alembic configuration is built here in code (no alembic.ini): the scripts live in
`cosell/store/migrations`, the version table is `cosell_alembic_version`. `upgrade` runs every
pending revision in ONE transaction that first takes a lock, so that several workers starting
at once against one database migrate one after the other (the later ones find nothing to do):
PostgreSQL's transaction-scoped advisory lock, or SQLite's write lock (`BEGIN IMMEDIATE`).
PostgreSQL and (with the store's own BEGIN) SQLite both run DDL transactionally, so a failed
migration leaves the schema as it was.

A database whose revision this cosell does not know was migrated by a newer cosell; it is
refused with `SchemaVersionError` instead of being touched.

The read-only `check` (every `Store.open(migrate=False)`: `cosell status`, `audit`, `plan`) does
not import Alembic: it reads the version table itself and compares it with `HEAD_REVISION`, the
newest revision's id (a test holds it equal to the head of the migration scripts). Alembic is
loaded only to migrate, or to explain a revision that is not the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Engine

from cosell.store.database import WRITE, create_engine, describe, normalise_url, refused
from cosell.store.errors import SchemaVersionError
from cosell.store.tables import VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config


@dataclass(frozen=True)
class Upgrade:
    """What `upgrade` did: the revision before (None: an empty database) and after."""

    before: str | None
    after: str


MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 0x636F73656C6C  # "cosell" in ASCII: the advisory lock id held while migrating
# The newest revision in `migrations/versions`; bump it with every new migration (a test checks
# it against Alembic's script directory).
HEAD_REVISION: Final = "0004"


def alembic_config() -> Config:
    """The Alembic configuration of the store's migrations, built in code."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision this cosell ships."""
    return HEAD_REVISION


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database is at, or None when cosell has never migrated it.

    Read from the version table directly (what Alembic's `MigrationContext` reads), so that
    checking a store does not load Alembic.

    Raises:
        SchemaVersionError: When the version table holds more than one revision (cosell's
            migrations are one line; Alembic would refuse it too).
    """
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    table = sa.table(VERSION_TABLE, sa.column("version_num", sa.String))
    revisions = connection.execute(sa.select(table.c.version_num)).scalars().all()
    if len(revisions) > 1:
        raise SchemaVersionError(
            f"the store {describe(connection.engine.url)!r} holds several schema revisions "
            f"({', '.join(sorted(revisions))}) in {VERSION_TABLE}; cosell's migrations are one "
            "line, so the table was changed by hand: keep the one row of the real revision"
        )
    return revisions[0] if revisions else None


def _check_known(revision: str | None, engine: Engine) -> None:
    if revision is None or revision == HEAD_REVISION:
        return
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    scripts = ScriptDirectory.from_config(alembic_config())
    try:
        known = scripts.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise SchemaVersionError(
            f"the store {describe(engine.url)!r} is at schema revision {revision!r}, which this "
            f"cosell does not know (it knows up to {head_revision()!r}): a newer cosell has "
            "migrated it. Upgrade cosell, or point it at another database"
        )


def upgrade(engine: Engine) -> Upgrade:
    """Bring the database to the newest revision; a no-op when it is already there.

    Args:
        engine: An engine from `cosell.store.database.create_engine`.

    Returns:
        The revisions before and after.

    Raises:
        SchemaVersionError: When a newer cosell has migrated the database.
        sqlalchemy.exc.OperationalError: When the database cannot be reached (callers turn it
            into a `StoreUnavailableError`).
    """
    with engine.execution_options(**{WRITE: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_ID)))
        revision = current_revision(connection)
        _check_known(revision, engine)
        head = head_revision()
        if revision != head:
            from alembic import command

            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, head)
        return Upgrade(before=revision, after=head)


def upgrade_database(url: str | None) -> tuple[str, Upgrade]:
    """Open the database at `url`, migrate it to the newest revision, and close it.

    Args:
        url: A store URL (see `cosell.store.database`); None for the default SQLite file.

    Returns:
        The URL as shown to a user (password masked) and the revisions before and after.

    Raises:
        StoreError: A bad URL, an unreachable database, or one migrated by a newer cosell.
    """
    parsed = normalise_url(url)
    engine = create_engine(parsed)
    try:
        return describe(parsed), upgrade(engine)
    except exc.DBAPIError as error:
        raise refused(parsed, error) from error
    finally:
        engine.dispose()


def check(engine: Engine) -> str:
    """Check that the database is at the newest revision, without changing it.

    Args:
        engine: An engine from `cosell.store.database.create_engine`.

    Returns:
        The revision the database is at.

    Raises:
        SchemaVersionError: When it is behind (run `cosell db upgrade`) or ahead (a newer cosell).
    """
    with engine.connect() as connection:
        revision = current_revision(connection)
    _check_known(revision, engine)
    head = head_revision()
    if revision != head:
        state = "has no cosell tables" if revision is None else f"is at revision {revision!r}"
        raise SchemaVersionError(
            f"the store {describe(engine.url)!r} {state}, and this cosell needs {head!r}: "
            "run `cosell db upgrade` (or open the store with migrations on)"
        )
    return head
