"""Alembic environment for reset-mailbot, used by `reset_mailbot.adapters.db.migrate`.

The configuration is built in code (no alembic.ini), so migrations run the same from a checkout
and from an installed wheel. `migrate.py` passes an open connection in
`config.attributes["connection"]`, created by our own engine factory so SQLite gets the same
pragmas as the daemon; a bare URL in `sqlalchemy.url` works too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from reset_mailbot.adapters.db.engine import create_db_engine
from reset_mailbot.adapters.db.schema import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = create_db_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
