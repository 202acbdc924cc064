"""Alembic environment: the schema is ``memory_graph.schema.Base.metadata``.

The connection comes from ``memory_graph.migrate`` (``config.attributes["connection"]``) or, for
the ``alembic`` command line, from ``sqlalchemy.url`` / ``MEMORY_GRAPH_DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from memory_graph.migrate import include_name
from memory_graph.schema import Base


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_name=include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    from memory_graph.config import Settings

    url = context.config.get_main_option("sqlalchemy.url") or Settings().sqlalchemy_url
    engine = create_engine(url)
    with engine.begin() as conn:
        run_migrations(conn)
