"""The database engine and everything that differs between SQLite and PostgreSQL.

Every dialect branch of the package lives in :class:`Dialect`: the upsert statement, the
greatest/least functions, the keyword index (SQLite's FTS5 table, PostgreSQL's ``tsvector``
column) and row locking. :func:`sql_errors` is the one place SQLAlchemy's errors become ours.
"""

from __future__ import annotations

import functools
import hashlib
import json
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
from memory_graph.filters import MetadataFilter

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


_FTS_COLUMNS = "chunk_id UNINDEXED, text, tokenize = 'porter unicode61'"


def keyword_table(namespace: str) -> str:
    """The FTS5 table of a namespace on SQLite: ``chunks_fts_`` and 16 hex digits of the
    namespace's SHA-256 (any namespace gives a plain identifier; migration 0007 uses the same)."""
    return "chunks_fts_" + hashlib.sha256(namespace.encode("utf-8")).hexdigest()[:16]


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

    def metadata_match(self, where: MetadataFilter, table: str = "documents") -> tuple[str, dict[str, Any]]:
        """A SQL condition on ``table``'s ``metadata`` JSON that holds where ``where`` does, and
        its parameters (named ``mf...``, so it joins any statement). SQLite compares the JSON
        value's type and value (``json_type``, ``json_extract``); PostgreSQL compares ``jsonb``
        values, whose equality is the same (``3 = 3.0``, ``true`` no number)."""
        column = f"{table}.metadata"
        conditions: list[str] = []
        params: dict[str, Any] = {}
        for i, (key, values) in enumerate(where.clauses):
            path = f"mf{i}"
            if self.is_sqlite:
                params[path] = f'$."{key}"'
                kind, value = f"json_type({column}, :{path})", f"json_extract({column}, :{path})"
                options = []
                for j, v in enumerate(values):
                    if isinstance(v, bool):
                        options.append(f"{kind} = '{'true' if v else 'false'}'")
                        continue
                    params[f"{path}v{j}"] = v
                    types = "'text'" if isinstance(v, str) else "'integer', 'real'"
                    options.append(f"({kind} IN ({types}) AND {value} = :{path}v{j})")
                conditions.append("(" + " OR ".join(options) + ")")
            else:
                params[path] = key
                params |= {f"{path}v{j}": json.dumps(v) for j, v in enumerate(values)}
                listed = ", ".join(f"CAST(:{path}v{j} AS jsonb)" for j in range(len(values)))
                conditions.append(f"(CAST({column} AS jsonb) -> CAST(:{path} AS text)) IN ({listed})")
        return " AND ".join(conditions), params

    # -- the keyword index: one FTS5 table per namespace on SQLite; on PostgreSQL a generated ---
    # -- tsvector column ------------------------------------------------------------------------
    # FTS5's bm25() weighs a term by the statistics of its whole table (how many rows, how many
    # hold the term, their mean length): in one table shared by every namespace, what other users
    # wrote changed a namespace's ranking, and a MATCH walked every namespace's postings. A table
    # per namespace (created by its first write, recorded in ``keyword_tables``) keeps both to the
    # namespace. PostgreSQL's ts_rank_cd reads only the document it ranks.

    def _ensure_keyword_table(self, conn: Connection, namespace: str) -> str:
        name = keyword_table(namespace)
        conn.execute(text(f'CREATE VIRTUAL TABLE IF NOT EXISTS "{name}" USING fts5({_FTS_COLUMNS})'))
        conn.execute(
            text(
                "INSERT INTO keyword_tables (namespace, name, created_at) VALUES (:ns, :name, :at)"
                " ON CONFLICT DO NOTHING"
            ),
            {"ns": namespace, "name": name, "at": self.bind_time(utcnow())},
        )
        return name

    def index_text(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Add chunk rows (``id``, ``namespace``, ``text``) to the keyword index."""
        if not self.is_sqlite or not rows:
            return
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(r["namespace"], []).append({"id": r["id"], "text": r["text"]})
        for namespace, part in groups.items():
            name = self._ensure_keyword_table(conn, namespace)
            conn.execute(text(f'INSERT INTO "{name}" (chunk_id, text) VALUES (:id, :text)'), part)

    def unindex_text(self, conn: Connection, chunk_ids: Sequence[str]) -> None:
        """Remove stored chunks from the keyword index (before their rows are deleted)."""
        if not self.is_sqlite or not chunk_ids:
            return
        groups: dict[str, list[str]] = {}
        found = conn.execute(
            text("SELECT id, namespace FROM chunks WHERE id IN :ids").bindparams(bindparam("ids", expanding=True)),
            {"ids": list(chunk_ids)},
        )
        for cid, namespace in found:
            groups.setdefault(namespace, []).append(cid)
        for namespace, ids in groups.items():
            if self.has_keyword_table(conn, namespace):
                conn.execute(
                    text(f'DELETE FROM "{keyword_table(namespace)}" WHERE chunk_id IN :ids').bindparams(
                        bindparam("ids", expanding=True)
                    ),
                    {"ids": ids},
                )

    def has_keyword_table(self, conn: Connection, namespace: str) -> bool:
        """Whether ``namespace`` has its keyword table (it has once a chunk of it was written)."""
        if not self.is_sqlite:
            return True
        found = conn.execute(text("SELECT 1 FROM keyword_tables WHERE namespace = :ns"), {"ns": namespace})
        return found.first() is not None

    def drop_keyword_table(self, conn: Connection, namespace: str) -> None:
        """Drop a namespace's keyword table and its record (forgetting the namespace)."""
        if self.is_sqlite:
            conn.execute(text(f'DROP TABLE IF EXISTS "{keyword_table(namespace)}"'))
            conn.execute(text("DELETE FROM keyword_tables WHERE namespace = :ns"), {"ns": namespace})

    def unindex_namespace(self, conn: Connection, namespace: str) -> int:
        """Remove a namespace's chunks from the keyword index, and say how many rows went: on
        SQLite its table is dropped, which leaves none of its terms behind (PostgreSQL's index is
        a column of the chunks, so nothing is left to remove there)."""
        if not self.is_sqlite or not self.has_keyword_table(conn, namespace):
            return 0
        removed = conn.execute(text(f'SELECT count(*) FROM "{keyword_table(namespace)}"')).scalar_one()
        self.drop_keyword_table(conn, namespace)
        return int(removed)

    def reindex_text(self, conn: Connection) -> None:
        """Make the keyword index hold exactly the stored chunks."""
        if not self.is_sqlite:
            return
        namespaces = list(conn.execute(text("SELECT DISTINCT namespace FROM chunks")).scalars().all())
        namespaces += [
            ns
            for ns in conn.execute(text("SELECT namespace FROM keyword_tables")).scalars().all()
            if ns not in set(namespaces)
        ]
        for namespace in namespaces:
            name = self._ensure_keyword_table(conn, namespace)
            params = {"ns": namespace}
            conn.execute(
                text(f'DELETE FROM "{name}" WHERE chunk_id NOT IN (SELECT id FROM chunks WHERE namespace = :ns)'),
                params,
            )
            conn.execute(
                text(
                    f'INSERT INTO "{name}" (chunk_id, text) SELECT id, text FROM chunks '
                    f'WHERE namespace = :ns AND id NOT IN (SELECT chunk_id FROM "{name}")'
                ),
                params,
            )

    def keyword_query(
        self, terms: Sequence[str], *, namespace: str, since: bool, until: bool, metadata: str | None = None
    ) -> tuple[str, str]:
        """The SQL of a keyword search for any of ``terms`` in the chunks of ``namespace`` (bound
        as ``:ns``), best first, at most ``:limit``, observed in ``[:since, :until)`` where those
        are bound, of the documents ``metadata`` holds for (a condition on ``d``, from
        :meth:`metadata_match`): BM25 over the namespace's own table on SQLite (check
        :meth:`has_keyword_table` first), ``ts_rank_cd`` on PostgreSQL. Returns the statement and
        the value to bind as ``:q``."""
        time_filter = (" AND d.observed_at >= :since" if since else "") + (
            " AND d.observed_at < :until" if until else ""
        )
        if metadata:
            time_filter += f" AND {metadata}"
        if self.is_sqlite:
            join = " JOIN chunks c ON c.id = f.chunk_id JOIN documents d ON d.id = c.document_id" if time_filter else ""
            name = keyword_table(namespace)
            sql = (
                f'SELECT f.chunk_id AS id, -rank AS score FROM "{name}" f'
                + join
                + f' WHERE "{name}" MATCH :q'
                + time_filter
                + " ORDER BY rank LIMIT :limit"  # FTS5's rank is bm25()
            )
            return sql, " OR ".join(f'"{t}"' for t in terms)
        sql = (
            "SELECT c.id AS id, ts_rank_cd(c.tsv, q, 1) AS score FROM chunks c"
            " JOIN documents d ON d.id = c.document_id, to_tsquery('english', :q) q"
            " WHERE c.tsv @@ q AND c.namespace = :ns"
            + time_filter
            # Ties (a text said twice) by id: the same order whichever plan the statistics choose.
            + " ORDER BY score DESC, c.id LIMIT :limit"
        )
        return sql, " | ".join(terms)
