"""GraphStore: the relational store of documents, chunks and the entity graph.

It owns the engine, the connections and the write lock; the SQL lives in the modules beside it
(:mod:`~memory_graph.store.writes`, :mod:`~memory_graph.store.reads`,
:mod:`~memory_graph.store.merges`, :mod:`~memory_graph.store.maintenance`), and the reads only
search needs in :mod:`memory_graph.retrieval.reads`. Writes are idempotent (unique keys and
upserts) and every read is a batched query, never one query per row.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Connection, Engine

from memory_graph.facts import Statement, timelines
from memory_graph.migrate import ensure_schema
from memory_graph.records import EntityRef, Merge, RelationRef
from memory_graph.schema import Document
from memory_graph.store import maintenance, merges, reads, writes
from memory_graph.store.engine import Dialect, create_store_engine, sql_errors
from memory_graph.store.rows import (
    AliasRow,
    ChunkRow,
    DocumentRow,
    EntityDetails,
    EntityRow,
    GraphProblems,
    MentionRow,
    RelationRow,
    RowCounts,
)
from memory_graph.store.writes import DocumentWrite, WriteResult


class GraphStore:
    """SQLAlchemy-backed store of documents, chunks, entities, mentions and relations.

    Args:
        engine: a SQLAlchemy engine (SQLite or PostgreSQL through psycopg 3).
        auto_upgrade: bring the schema to head on open (the embedded default does); otherwise a
            database that is behind raises :class:`SchemaOutOfDateError`.
    """

    def __init__(self, engine: Engine, *, auto_upgrade: bool = False) -> None:
        self.engine = engine
        self.dialect = Dialect(engine.dialect.name)
        # SQLite has one writer at a time; serialise our writes instead of waiting on its lock.
        self._write_lock = threading.Lock() if self.dialect.is_sqlite else None
        self._local = threading.local()  # the connection :meth:`reading` pins for a thread
        with sql_errors("opening the database", engine):
            ensure_schema(engine, auto_upgrade=auto_upgrade)

    @classmethod
    def from_url(cls, url: str, *, auto_upgrade: bool = False, sqlite_synchronous: str = "NORMAL") -> GraphStore:
        """A store on ``url``; ``sqlite_synchronous`` as in :func:`create_store_engine`."""
        return cls(create_store_engine(url, sqlite_synchronous=sqlite_synchronous), auto_upgrade=auto_upgrade)

    def close(self) -> None:
        self.engine.dispose()

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def writing(self, doing: str) -> Iterator[Connection]:
        """A transaction, committed when the block ends; SQLAlchemy errors become
        :class:`GraphStoreError` s that say what was being ``doing``."""
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with sql_errors(doing, self.engine), self.engine.begin() as conn:
                yield conn
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def reading(self, doing: str = "reading") -> Iterator[Connection]:
        """A connection for reads; inside the block this thread's reads share it (a search runs
        a dozen statements, and checking a connection out of the pool for each adds up).
        SQLAlchemy errors become :class:`GraphStoreError` s that say what was being ``doing``."""
        if (pinned := getattr(self._local, "conn", None)) is not None:
            with sql_errors(doing, self.engine):
                yield pinned
            return
        with sql_errors(doing, self.engine):
            conn = self.engine.connect()
        self._local.conn = conn
        try:
            with sql_errors(doing, self.engine):
                yield conn
        finally:
            self._local.conn = None
            conn.close()

    def ping(self) -> None:
        """Raise :class:`GraphStoreError` unless the database answers."""
        with self.reading("reaching the database") as conn:
            conn.execute(Document.__table__.select().limit(0))

    # -- writes ------------------------------------------------------------------------------

    def write_documents(self, docs: Sequence[DocumentWrite]) -> list[WriteResult]:
        """Store documents, their chunks and their graph in one transaction.

        A document whose ``(namespace, doc_key)`` is stored with the same content is left as it
        is (``created=False``); one stored with other content is replaced.
        """
        if not docs:
            return []
        with self.writing("storing documents") as conn:
            return writes.write_documents(conn, self.dialect, docs)

    def mark_indexed(self, chunk_ids: Sequence[str]) -> None:
        """Record that the vectors of these chunks are confirmed written."""
        if chunk_ids:
            with self.writing("marking chunks indexed") as conn:
                writes.mark_indexed(conn, chunk_ids)

    def delete_document(self, document_id: str) -> DocumentRow | None:
        """Delete a document's chunks and graph contributions; keep a tombstone row.

        Returns the deleted document (with the chunk ids to remove from the vector index), or
        ``None`` when there is no such live document.
        """
        with self.writing("deleting a document") as conn:
            return writes.delete_document(conn, self.dialect, document_id)

    def forget_namespace(self, namespace: str) -> tuple[dict[str, int], list[str]]:
        """Delete every row of ``namespace`` in one transaction: the rows deleted per table, and
        the ids of the chunks deleted (their vectors are the caller's to remove)."""
        with self.writing("forgetting a namespace") as conn:
            return writes.forget_namespace(conn, self.dialect, namespace)

    # -- reads -------------------------------------------------------------------------------

    def document(self, document_id: str) -> DocumentRow | None:
        """A document (live or a tombstone) with its chunk ids in order, or ``None``."""
        with self.reading("reading a document") as conn:
            return reads.document(conn, document_id)

    def content_hashes(self, namespace: str, doc_keys: Sequence[str]) -> dict[str, str]:
        """``doc_key -> content hash`` of the live documents among ``doc_keys``."""
        with self.reading("looking up documents") as conn:
            return reads.live_documents_by_key(conn, namespace, doc_keys, Document.content_hash)

    def document_ids_by_key(self, namespace: str, doc_keys: Sequence[str]) -> dict[str, str]:
        """``doc_key -> document id`` for the live documents among ``doc_keys``."""
        with self.reading("looking up documents") as conn:
            return reads.live_documents_by_key(conn, namespace, doc_keys, Document.id)

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, ChunkRow]:
        """Chunk rows joined with their document, by id, in one query per batch."""
        if not chunk_ids:
            return {}
        with self.reading("reading chunks") as conn:
            return reads.chunks(conn, chunk_ids)

    def chunks_to_index(self, chunk_ids: Sequence[str] | None = None, *, limit: int | None = None) -> list[ChunkRow]:
        """Chunks whose vectors are not confirmed (all of them, or those among ``chunk_ids``)."""
        with self.reading("listing unindexed chunks") as conn:
            ids = reads.unindexed_chunk_ids(conn, chunk_ids, limit)
        rows = self.chunks(ids)
        return [rows[i] for i in ids if i in rows]

    def iter_chunk_ids(self, *, batch_size: int = 5000) -> Iterator[list[str]]:
        """Every chunk id, in batches (for verify)."""
        last = ""
        while True:
            with self.reading("listing chunks") as conn:
                ids = reads.chunk_ids_after(conn, last, batch_size)
            if not ids:
                return
            yield ids
            last = ids[-1]

    def existing_chunk_ids(self, chunk_ids: Sequence[str]) -> set[str]:
        """Those of ``chunk_ids`` that are stored."""
        with self.reading("checking chunks") as conn:
            return reads.existing_chunk_ids(conn, chunk_ids)

    def chunk_context(
        self, chunk_ids: Sequence[str]
    ) -> tuple[dict[str, list[EntityRef]], dict[str, list[RelationRef]]]:
        """What each chunk holds of the graph: the (canonical) entities it mentions, in the order
        of their first mention, and the relations it is evidence for, with that evidence. Two
        queries per batch of chunks: the relations' ends are among the entities the chunk
        mentions, read by the first (a third query reads any that is not)."""
        with self.reading("reading chunk context") as conn:
            return reads.chunk_context(conn, chunk_ids)

    def find_entities(self, namespace: str, keys: Iterable[str]) -> list[EntityRow]:
        """Entities whose key or an alias key is among ``keys``, most mentioned first."""
        wanted = list(dict.fromkeys(k for k in keys if k))
        if not wanted:
            return []
        with self.reading("looking up entities") as conn:
            return reads.find_entities(conn, namespace, wanted)

    def entity_details(self, entity_id: int, *, max_relations: int = 50, max_mentions: int = 50) -> EntityDetails:
        """Aliases, relations (with evidence), mentions and mention totals of one entity and the
        rows that stand for it (merged aliases, same-name siblings)."""
        with self.reading("reading an entity") as conn:
            return reads.entity_details(conn, entity_id, max_relations=max_relations, max_mentions=max_mentions)

    def turn_before(
        self, namespace: str, observed_at: datetime, *, gap: timedelta, besides: str | None = None
    ) -> tuple[str, list[tuple[str, str, str]]] | None:
        """The turn of a conversation in ``namespace`` before a memory observed at ``observed_at``:
        the latest memory whose metadata names a speaker, observed at most ``gap`` earlier or at the
        same time (a session stamped with one time), other than the document ``besides``. Its
        speaker and the ``(label, key, name)`` of the canonical entities its last chunk mentions,
        or ``None`` (two statements)."""
        with self.reading("reading the turn before") as conn:
            return reads.turn_before(conn, namespace, observed_at, gap=gap, besides=besides)

    def state_statements(
        self, namespace: str, *, subjects: Sequence[int] | None = None, states: Sequence[str] | None = None
    ) -> list[Statement]:
        """The statements of states (:mod:`memory_graph.facts`) in ``namespace``: of the given
        (canonical) subjects and the rows they stand for, or of every subject; of ``states``
        only, when given. :func:`~memory_graph.facts.timelines` turns them into timelines."""
        with self.reading("reading statements") as conn:
            members = reads.members(conn, subjects) if subjects is not None else None
            if members is not None and not members:
                return []
            return reads.state_statements(conn, namespace, subjects=members, states=states)

    # -- merges ------------------------------------------------------------------------------

    def merge_entities(self, entity_id: int, into_id: int, *, reason: str) -> int:
        """Make ``entity_id`` an alias of ``into_id`` (recorded, undoable); returns the merge id.

        Raises:
            ConfigError: the entities are the same, in different namespaces, or already merged.
        """
        with self.writing("merging entities") as conn:
            return merges.merge(conn, self.dialect, entity_id, into_id, reason)

    def undo_merge(self, merge_id: int) -> None:
        """Split a merged entity off again.

        Raises:
            NotFoundError: there is no such merge, or it was already undone.
        """
        with self.writing("undoing a merge") as conn:
            merges.undo_merge(conn, merge_id)

    def merges(self, namespace: str) -> list[Merge]:
        """The merges of a namespace, newest first, with both entities' names."""
        with self.reading("listing merges") as conn:
            return merges.merges(conn, namespace)

    def resolve_aliases(
        self, namespace: str, keys: Iterable[tuple[str, str]], *, labels: Iterable[str] = ("PERSON", "ORG")
    ) -> list[int]:
        """Merge one-word names into the one longer name of the namespace they can only mean.

        For each ``(label, key)`` touched by a write: a one-word entity ("bob") whose word starts
        or ends exactly one longer entity of the same label ("bob smith") is merged into it; an
        ambiguous one ("bob smith", "bob jones") is left alone. Returns the merge ids.
        """
        with self.writing("resolving aliases") as conn:
            return merges.resolve_aliases(conn, self.dialect, namespace, keys, labels)

    # -- maintenance -------------------------------------------------------------------------

    def stats(self, namespace: str | None = None) -> RowCounts:
        """Row counts (live documents only), for one namespace or all."""
        with self.reading("counting rows") as conn:
            return maintenance.row_counts(conn, namespace)

    def graph_problems(self) -> GraphProblems:
        """Counts of dangling rows and counters that disagree with the rows they count."""
        with self.reading("checking the graph") as conn:
            return maintenance.graph_problems(conn)

    def repair_graph(self) -> None:
        """Remove dangling rows and recompute counters from the rows they count."""
        with self.writing("repairing the graph") as conn:
            maintenance.repair_graph(conn, self.dialect)

    # -- the vector collections of the namespaces (a vector_store.CollectionRegistry) ----------

    def vector_collections(self, index: str) -> dict[str, str]:
        """namespace → Chroma collection, for the collections of the vector index ``index``."""
        with self.reading("reading the vector collections") as conn:
            return maintenance.vector_collections(conn, index)

    def register_vector_collection(self, index: str, namespace: str, collection: str) -> None:
        """Record that ``namespace`` has the collection ``collection`` (idempotent)."""
        with self.writing("recording a vector collection") as conn:
            maintenance.register_vector_collection(conn, self.dialect, index, namespace, collection)

    def unregister_vector_collection(self, index: str, namespace: str) -> None:
        with self.writing("removing a vector collection") as conn:
            maintenance.unregister_vector_collection(conn, index, namespace)

    def chunk_namespaces(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        """chunk id → namespace, for those of ``chunk_ids`` that are stored."""
        with self.reading("checking chunks") as conn:
            return maintenance.chunk_namespaces(conn, chunk_ids)

    def iter_chunk_ids_by_namespace(self, *, batch_size: int = 5000) -> Iterator[dict[str, list[str]]]:
        """Every chunk id, in batches, each batch grouped by namespace (for verify)."""
        last = ""
        while True:
            with self.reading("listing chunks") as conn:
                rows = maintenance.chunk_ids_with_namespace_after(conn, last, batch_size)
            if not rows:
                return
            groups: dict[str, list[str]] = {}
            for cid, ns in rows:
                groups.setdefault(ns, []).append(cid)
            yield groups
            last = rows[-1][0]

    def entity_rows(self, namespace: str | None = None) -> list[EntityRow]:
        """Every entity (of one namespace or all)."""
        with self.reading("reading entities") as conn:
            return maintenance.entity_rows(conn, namespace)

    def relation_rows(self, namespace: str | None = None, *, when: datetime | None = None) -> list[RelationRow]:
        """Every relation with its first evidence sentence; a state's value with its status and
        period at ``when`` (else now)."""
        with self.reading("reading relations") as conn:
            rows = maintenance.relation_rows(conn, namespace)
            stated = [r for r in rows if r.state]
            if not stated:
                return rows
            canonical = reads.canonical_ids(conn, {i for r in stated for i in (r.source_id, r.target_id)})
            lines = {
                (ns, key): line
                for ns in sorted({r.namespace for r in stated})
                for key, line in timelines(reads.state_statements(conn, ns)).items()
            }
        at = when or datetime.now(UTC)
        out = []
        for r in rows:
            line = lines.get((r.namespace, (canonical.get(r.source_id, r.source_id), r.state or "")))
            if line is not None:
                status, start, end = line.status(canonical.get(r.target_id, r.target_id), at)
                r = dataclasses.replace(r, status=status, valid_from=start, valid_until=end)
            out.append(r)
        return out

    def mention_rows(self, namespace: str | None = None) -> list[MentionRow]:
        """Every mention with its document and observation time."""
        with self.reading("reading mentions") as conn:
            return maintenance.mention_rows(conn, namespace)

    def alias_rows(self, namespace: str | None = None) -> list[AliasRow]:
        """Every live alias (of one namespace or all)."""
        with self.reading("reading aliases") as conn:
            return maintenance.alias_rows(conn, namespace)
