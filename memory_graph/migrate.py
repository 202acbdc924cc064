"""Schema migrations through Alembic: upgrade to head, read the current revision, check it."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from memory_graph.errors import ConfigError, SchemaOutOfDateError

# Dialect-specific keyword index objects: created by the migrations, invisible to the models.
KEYWORD_INDEX_OBJECTS = frozenset({"chunks_fts", "tsv", "ix_chunks_tsv"})


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


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Make sure the database is at head: upgrade it (embedded default) or say it is behind.

    Raises:
        SchemaOutOfDateError: the database is behind and ``auto_upgrade`` is false.
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if auto_upgrade:
        upgrade(engine)
        return
    url = engine.url.render_as_string(hide_password=True)
    raise SchemaOutOfDateError(
        f"database {url} is at schema revision {current or 'none'}, the code needs {head}; run: memory-graph db upgrade"
    )
