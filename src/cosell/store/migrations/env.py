"""Alembic's entry point: migrate the connection `cosell.store.schema` hands over.

`cosell.store.schema` opens the transaction (holding PostgreSQL's advisory lock, or SQLite's
write lock, so that two processes starting at once migrate one after the other), puts the
connection in `config.attributes["connection"]` and calls `alembic.command.upgrade`; this module
runs the migrations on that connection inside that transaction. Offline (`--sql`) mode is not
supported: migrations are always run against a live database.
"""

from __future__ import annotations

from alembic import context

from cosell.store.tables import VERSION_TABLE, metadata


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None or context.is_offline_mode():
        raise RuntimeError(
            "cosell's migrations run against a live connection: use `cosell db upgrade`"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_run()
