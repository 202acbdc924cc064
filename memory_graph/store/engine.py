"""The database engine and everything that differs between SQLite and PostgreSQL.

Every dialect branch of the package lives in :class:`Dialect`: the upsert statement, the
greatest/least functions, the keyword index (SQLite's FTS5 table, PostgreSQL's ``tsvector``
column) and row locking. :func:`sql_errors` is the one place SQLAlchemy's errors become ours.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, create_engine, event, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.sql.expression import ColumnElement, Select

from memory_graph.errors import ConfigError, GraphStoreError

BATCH = 400  # rows per multi-row statement (SQLite allows 32766 bound variables)
#: Address space an SQLite store is read through (memory-mapped; the pages are the OS file cache).
SQLITE_MMAP_BYTES = 1 << 30

T = TypeVar("T")


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def batches(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``: one multi-row statement or ``IN (...)`` list each."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


#: ``PRAGMA synchronous`` values :class:`~memory_graph.config.Settings` may choose.
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL")


def create_store_engine(url: str, *, sqlite_synchronous: str = "NORMAL") -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout, memory-mapped reads
    and ``PRAGMA synchronous=<sqlite_synchronous>``: NORMAL (a commit survives the process being
    killed) or FULL (it survives an OS crash or power loss too, for an fsync per commit).

    Raises:
        ConfigError: the URL is malformed or names a driver that is not installed.
    """
    if sqlite_synchronous.upper() not in SQLITE_SYNCHRONOUS:
        raise ConfigError(
            f"sqlite_synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}, not {sqlite_synchronous!r}"
        )
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", functools.partial(_sqlite_pragmas, synchronous=sqlite_synchronous.upper()))
        else:
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        safe = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
        raise ConfigError(
            f"database URL {safe!r} is not usable ({exc.__class__.__name__}: {exc}); "
            "expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB (pip install 'memory-graph[postgres]')"
        ) from exc
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, synchronous: str) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA synchronous={synchronous}")  # one of SQLITE_SYNCHRONOUS
    # Pages read through a memory map rather than a read() call each: a search reads a few
    # hundred scattered rows (its hits' entities and relations). The map is address space, not
    # memory (docs/performance.md, "SQLite memory map").
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


@contextmanager
def sql_errors(doing: str, engine: Engine) -> Iterator[None]:
    """Map SQLAlchemy errors raised inside the block to one-line :class:`GraphStoreError` s that
    say what was being done and where (the password hidden)."""
    try:
        yield
    except GraphStoreError:
        raise
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        url = engine.url.render_as_string(hide_password=True)
        raise GraphStoreError(f"{doing} failed on {url}: {reason}") from exc
    except SQLAlchemyError as exc:
        raise GraphStoreError(f"{doing} failed: {exc}") from exc


class Dialect:
    """What differs between SQLite and PostgreSQL, for the statements of this package."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_sqlite = name == "sqlite"

    def insert(self, table: Any) -> Any:
        """An ``INSERT`` that can take ``ON CONFLICT`` clauses."""
        return (sqlite.insert if self.is_sqlite else postgresql.insert)(table)

    def greatest(self, a: Any, b: Any) -> ColumnElement[Any]:
        return func.max(a, b) if self.is_sqlite else func.greatest(a, b)

    def least(self, a: Any, b: Any) -> ColumnElement[Any]:
        return func.min(a, b) if self.is_sqlite else func.least(a, b)

    def skip_locked(self, query: Select[Any]) -> Select[Any]:
        """``query`` locking the rows it reads and skipping those other transactions hold.
        SQLite has one writer at a time, so its statement is atomic as it is."""
        return query if self.is_sqlite else query.with_for_update(skip_locked=True)

    def bind_time(self, value: datetime) -> Any:
        """A time bound into raw SQL, which bypasses the ``Timestamp`` column type: SQLite
        stores naive UTC text."""
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if self.is_sqlite else value

    # -- the keyword index: FTS5 on SQLite; on PostgreSQL a generated tsvector column ----------

    def index_text(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Add chunk rows (``id``, ``namespace``, ``text``) to the keyword index."""
        if self.is_sqlite and rows:
            conn.execute(
                text("INSERT INTO chunks_fts (chunk_id, namespace, text) VALUES (:id, :namespace, :text)"),
                [{"id": r["id"], "namespace": r["namespace"], "text": r["text"]} for r in rows],
            )

    def unindex_text(self, conn: Connection, chunk_ids: Sequence[str]) -> None:
        """Remove chunks from the keyword index."""
        if self.is_sqlite and chunk_ids:
            conn.execute(
                text("DELETE FROM chunks_fts WHERE chunk_id IN :ids").bindparams(bindparam("ids", expanding=True)),
                {"ids": list(chunk_ids)},
            )

    def reindex_text(self, conn: Connection) -> None:
        """Make the keyword index hold exactly the stored chunks."""
        if self.is_sqlite:
            conn.execute(text("DELETE FROM chunks_fts WHERE chunk_id NOT IN (SELECT id FROM chunks)"))
            conn.execute(
                text(
                    "INSERT INTO chunks_fts (chunk_id, namespace, text) SELECT id, namespace, text FROM chunks "
                    "WHERE id NOT IN (SELECT chunk_id FROM chunks_fts)"
                )
            )

    def keyword_query(self, terms: Sequence[str], *, since: bool, until: bool) -> tuple[str, str]:
        """The SQL of a keyword search for any of ``terms`` in the chunks of ``:ns``, best first,
        at most ``:limit``, observed in ``[:since, :until)`` where those are bound: BM25 on SQLite,
        ``ts_rank_cd`` on PostgreSQL. Returns the statement and the value to bind as ``:q``."""
        time_filter = (" AND d.observed_at >= :since" if since else "") + (
            " AND d.observed_at < :until" if until else ""
        )
        if self.is_sqlite:
            join = " JOIN chunks c ON c.id = f.chunk_id JOIN documents d ON d.id = c.document_id" if time_filter else ""
            sql = (
                "SELECT f.chunk_id AS id, -rank AS score FROM chunks_fts f"
                + join
                + " WHERE chunks_fts MATCH :q AND f.namespace = :ns"
                + time_filter
                + " ORDER BY rank LIMIT :limit"  # FTS5's rank is bm25()
            )
            return sql, " OR ".join(f'"{t}"' for t in terms)
        sql = (
            "SELECT c.id AS id, ts_rank_cd(c.tsv, q, 1) AS score FROM chunks c"
            " JOIN documents d ON d.id = c.document_id, to_tsquery('english', :q) q"
            " WHERE c.tsv @@ q AND c.namespace = :ns" + time_filter + " ORDER BY score DESC LIMIT :limit"
        )
        return sql, " | ".join(terms)
