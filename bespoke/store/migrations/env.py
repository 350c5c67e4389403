"""Alembic environment. `bespoke.store.db.migrate` configures Alembic in code and
hands over an open connection in `config.attributes["connection"]`; there is no
alembic.ini and no URL here, so the installed package carries its migrations."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from bespoke.store import tables  # noqa: F401  (registers the tables)

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("bespoke migrations run through bespoke.store.db.migrate(engine), not the alembic CLI")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
run_migrations_online()
