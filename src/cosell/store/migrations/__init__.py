"""Alembic migrations of the store, shipped inside the package and run by `cosell.store.schema`.

`env.py` is Alembic's entry point; `versions/` holds one module per revision, each a
hand-checked `upgrade` (and `downgrade`) that the schema test compares with `tables.metadata`
on SQLite and PostgreSQL. There is no alembic.ini: `cosell.store.schema` builds the Alembic
configuration in code and hands `env.py` an open connection.
"""
