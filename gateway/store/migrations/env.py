"""Alembic environment for the gateway's control-plane schema.

Migrations run through :meth:`gateway.store.ControlStore.migrate`, which passes an open
connection in ``config.attributes["connection"]``; there is no engine configuration here. To
write a new revision, compare against ``gateway.store._schema.Base.metadata``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from gateway.store._schema import Base


def run_migrations_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline (--sql) migrations are not supported")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "run migrations with 'gateway migrate' (ControlStore.migrate), which supplies the "
            "database connection"
        )
    run_migrations_online(connection)


main()
