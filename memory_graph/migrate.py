"""Schema migrations through Alembic: upgrade to head, read the current revision, check it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from memory_graph.errors import ConfigError, SchemaOutOfDateError
from memory_graph.locks import exclusive

# Dialect-specific keyword index objects: created by the migrations, invisible to the models.
KEYWORD_INDEX_OBJECTS = frozenset({"chunks_fts", "tsv", "ix_chunks_tsv"})
#: The PostgreSQL advisory lock key schema changes hold (any constant of our own).
_PG_SCHEMA_LOCK = 0x6D656D67


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic filter: compare everything but the keyword index (FTS5 shadow tables included)."""
    return not (name in KEYWORD_INDEX_OBJECTS or (type_ == "table" and name and name.startswith("chunks_fts")))


def migrations_dir() -> Path:
    """``migrations/`` of the checkout, or its copy inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigError("the Alembic migrations directory is missing; reinstall memory-graph")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Upgrade the database to ``revision`` (default: the newest); returns the revision reached."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)
    return current_revision(engine) or ""


@contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    """Serialise schema creation and upgrades between processes: an flock on ``<file>.lock``
    beside a SQLite file, a session advisory lock on PostgreSQL. Without it, two processes that
    open a new store at once both create its tables, and one fails."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            yield
            return
        with exclusive(Path(f"{database}.lock")):
            yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_SCHEMA_LOCK})
            conn.commit()


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Make sure the database is at head: upgrade it (embedded default) or say it is behind.

    Raises:
        SchemaOutOfDateError: the database is behind and ``auto_upgrade`` is false.
    """
    head = head_revision()
    if current_revision(engine) == head:
        return
    with schema_lock(engine):  # another process may be creating or upgrading it right now
        current = current_revision(engine)
        if current == head:
            return
        if auto_upgrade:
            upgrade(engine)
            return
    url = engine.url.render_as_string(hide_password=True)
    raise SchemaOutOfDateError(
        f"database {url} is at schema revision {current or 'none'}, the code needs {head}; run: memory-graph db upgrade"
    )
