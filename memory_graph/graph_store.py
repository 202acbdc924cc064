"""The relational store: documents, chunks and the entity graph, on SQLite or PostgreSQL.

All SQL and every dialect branch live here. Writes are idempotent (unique keys and upserts)
and every read on the query path is a batched query, never one query per hit.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from memory_graph.errors import ConfigError, GraphStoreError, NotFoundError
from memory_graph.extraction import CONCEPT, EXTRACTOR_VERSION, FIRST_PERSON, THIRD_PERSON, Extraction, normalize_key
from memory_graph.migrate import ensure_schema
from memory_graph.records import EntityRef, RelationRef, speaker_of
from memory_graph.schema import (
    Chunk,
    Document,
    Entity,
    EntityAlias,
    EntityMerge,
    Mention,
    Relation,
    RelationEvidence,
)

_BATCH = 400  # rows per multi-row statement (SQLite allows 32766 bound variables)

# Aliases of the entities table, made once: an alias copies every column, which costs more than
# running a small query when it is done per call on the search path.
_CANON = Entity.__table__.alias("canon")
_SOURCE_RAW, _TARGET_RAW = Entity.__table__.alias("sr"), Entity.__table__.alias("tr")
_SOURCE, _TARGET = Entity.__table__.alias("s"), Entity.__table__.alias("t")
_GIVEN = Entity.__table__.alias("given")

# The statements of the search path, built once: building a statement costs more than running
# it on a small database (0.3 ms against 0.1 ms), and a search runs about fifteen of them.
_IDS = bindparam("ids", expanding=True)
_CHUNKS = (
    select(
        Chunk.id,
        Chunk.document_id,
        Chunk.namespace,
        Chunk.text,
        Chunk.start,
        Chunk.end,
        Document.external_id,
        Document.meta.label("meta"),
        Document.observed_at,
        Document.created_at,
    )
    .join(Document, Document.id == Chunk.document_id)
    .where(Chunk.id.in_(_IDS))
)
_NAMESPACES_OF = select(Chunk.namespace).where(Chunk.id.in_(_IDS))
# A namespace's chunk count, and whether another namespace holds chunks (two index probes, not a count).
_NAMESPACE_CHUNKS = select(
    select(func.count()).select_from(Chunk).where(Chunk.namespace == bindparam("ns")).scalar_subquery(),
    or_(
        select(Chunk.id).where(Chunk.namespace < bindparam("ns")).exists(),
        select(Chunk.id).where(Chunk.namespace > bindparam("ns")).exists(),
    ),
)
# The entities the chunks ``:ids`` mention, each row its own and the canonical one it stands for
# (through any merge), in the order of their first mention in each chunk.
_CHUNK_ENTITIES = (
    select(
        Mention.chunk_id,
        Mention.entity_id,
        _CANON.c.id,
        _CANON.c.name,
        _CANON.c.label,
        func.min(Mention.start).label("pos"),
    )
    .join(Entity, Entity.id == Mention.entity_id)
    .join(_CANON, _CANON.c.id == func.coalesce(Entity.merged_into, Entity.id))
    .where(Mention.chunk_id.in_(_IDS))
    .group_by(Mention.chunk_id, Mention.entity_id, _CANON.c.id, _CANON.c.name, _CANON.c.label)
    .order_by(Mention.chunk_id, "pos")
)
# A relation's two ends as canonical entities (through any merge): the columns, and the joins
# (from a query that has ``relations``) that give them.
_ENDS = (
    _SOURCE.c.id.label("sid"),
    _SOURCE.c.name.label("sname"),
    _SOURCE.c.label.label("slabel"),
    _TARGET.c.id.label("tid"),
    _TARGET.c.name.label("tname"),
    _TARGET.c.label.label("tlabel"),
)


def _join_ends(query: Any) -> Any:
    return (
        query.join(_SOURCE_RAW, _SOURCE_RAW.c.id == Relation.source_id)
        .join(_TARGET_RAW, _TARGET_RAW.c.id == Relation.target_id)
        .join(_SOURCE, _SOURCE.c.id == func.coalesce(_SOURCE_RAW.c.merged_into, _SOURCE_RAW.c.id))
        .join(_TARGET, _TARGET.c.id == func.coalesce(_TARGET_RAW.c.merged_into, _TARGET_RAW.c.id))
    )


# The relations the chunks ``:ids`` are evidence for, their ends as stored: the chunks mention
# them, so :data:`_CHUNK_ENTITIES` has read their canonical entities already.
_CHUNK_RELATIONS = (
    select(
        RelationEvidence.chunk_id,
        RelationEvidence.sentence,
        Relation.id,
        Relation.predicate,
        Relation.confidence,
        Relation.source_id,
        Relation.target_id,
    )
    .join(Relation, Relation.id == RelationEvidence.relation_id)
    .where(RelationEvidence.chunk_id.in_(_IDS))
    .order_by(RelationEvidence.chunk_id, RelationEvidence.start, Relation.confidence.desc(), Relation.id)
)
# Entity rows by id with the canonical entity each stands for.
_CANONICAL_OF = (
    select(Entity.id, _CANON.c.id, _CANON.c.name, _CANON.c.label)
    .join(_CANON, _CANON.c.id == func.coalesce(Entity.merged_into, Entity.id))
    .where(Entity.id.in_(_IDS))
)
_KEYS = bindparam("keys", expanding=True)
_MATCHED = union(
    select(Entity.key.label("k"), func.coalesce(Entity.merged_into, Entity.id).label("cid")).where(
        Entity.namespace == bindparam("ns"), Entity.key.in_(_KEYS)
    ),
    select(EntityAlias.alias_key.label("k"), func.coalesce(Entity.merged_into, Entity.id).label("cid"))
    .join(Entity, Entity.id == EntityAlias.entity_id)
    .where(EntityAlias.namespace == bindparam("ns"), EntityAlias.alias_key.in_(_KEYS), EntityAlias.count > 0),
).subquery()
_MATCH_KEYS = (
    select(_MATCHED.c.k, *Entity.__table__.c)
    .join(Entity, Entity.id == _MATCHED.c.cid)
    .order_by(Entity.mention_count.desc(), Entity.id)
)
# The rows each of a set of entities stands for at query time, with their stored mention counts,
# in one statement: the rows of the same name as the given one (kind 0), and the rows merged into
# those (kind 1).
_SAME_NAME = (
    select(
        _GIVEN.c.id.label("given"),
        Entity.id,
        Entity.merged_into,
        Entity.namespace,
        Entity.key,
        Entity.mention_count,
        literal(0).label("kind"),
    )
    .join(_GIVEN, and_(_GIVEN.c.namespace == Entity.namespace, _GIVEN.c.key == Entity.key))
    .where(_GIVEN.c.id.in_(_IDS))
)
_SAME_NAME_ROWS = _SAME_NAME.subquery()
_MEMBERS = union_all(
    _SAME_NAME,
    select(
        _SAME_NAME_ROWS.c.given,
        Entity.id,
        Entity.merged_into,
        Entity.namespace,
        Entity.key,
        Entity.mention_count,
        literal(1),
    ).join(_SAME_NAME_ROWS, Entity.merged_into == _SAME_NAME_ROWS.c.id),
)
_NAMES_FROM = (
    select(Entity)
    .where(
        Entity.namespace == bindparam("ns"),
        Entity.key >= bindparam("low"),
        Entity.key < bindparam("high"),
        Entity.merged_into.is_(None),
        Entity.label.not_in((CONCEPT, "DATE")),
    )
    .order_by(Entity.mention_count.desc(), Entity.id)
    .limit(bindparam("limit"))
)
_DATES = (
    select(Entity)
    .where(
        Entity.namespace == bindparam("ns"),
        Entity.label == "DATE",
        Entity.merged_into.is_(None),
        Entity.key.in_(_KEYS),
    )
    .order_by(Entity.key)
    .limit(100)
)
_RELATIONS_AMONG = select(
    Relation.id, Relation.source_id, Relation.target_id, (Relation.count * Relation.confidence).label("w")
).where(Relation.namespace == bindparam("ns"), Relation.source_id.in_(_IDS), Relation.target_id.in_(_IDS))


def _time_filtered(query: Any, since: bool, until: bool) -> Any:
    """Keep rows of ``query`` (which joins ``chunks``) whose document was observed in
    ``[:since, :until)``; each bound only where asked for."""
    if not (since or until):
        return query
    query = query.join(Document, Document.id == Chunk.document_id)
    if since:
        query = query.where(Document.observed_at >= bindparam("since"))
    if until:
        query = query.where(Document.observed_at < bindparam("until"))
    return query


@cache
def _entity_chunks_query(salient: bool, since: bool, until: bool) -> Any:
    """``(chunk_id, entity_id, n)`` for the mentions of ``:ids`` in ``:ns``; a mention in the
    chunk's first sentence counts double (the chunk is about it); ``salient``: only those."""
    first_sentence = Mention.sent_start == Chunk.start
    query = (
        select(Mention.chunk_id, Mention.entity_id, func.sum(case((first_sentence, 2.0), else_=1.0)).label("n"))
        .join(Chunk, Chunk.id == Mention.chunk_id)
        .where(Mention.namespace == bindparam("ns"), Mention.entity_id.in_(_IDS))
        .group_by(Mention.chunk_id, Mention.entity_id)
    )
    return _time_filtered(query.where(first_sentence) if salient else query, since, until)


@cache
def _evidence_query(since: bool, until: bool) -> Any:
    """``(chunk_id, relation_id)`` of the evidence for the relations ``:ids``, strongest first."""
    query = (
        select(RelationEvidence.chunk_id, RelationEvidence.relation_id)
        .where(RelationEvidence.relation_id.in_(_IDS))
        .order_by(RelationEvidence.confidence.desc(), RelationEvidence.id)
        .limit(bindparam("limit"))
    )
    if since or until:
        query = _time_filtered(query.join(Chunk, Chunk.id == RelationEvidence.chunk_id), since, until)
    return query


_MENTIONED = func.coalesce(Entity.merged_into, Entity.id)
# A mention that names its entity: no pronoun ("I" standing for the speaker of a turn, "she"
# for the person named before).
_NAMES = func.lower(Mention.text).not_in(sorted(FIRST_PERSON | THIRD_PERSON))
# ``(chunk_id, canonical entity id, in first sentence)`` for the chunks ``:ids``, of the entities
# with a label among ``:labels`` (a turn's speaker behind its "I" among them).
_CHUNK_MENTIONS = (
    select(
        Mention.chunk_id,
        _MENTIONED.label("eid"),
        func.max(case((Mention.sent_start == Chunk.start, 1), else_=0)).label("first"),
    )
    .join(Entity, Entity.id == Mention.entity_id)
    .join(Chunk, Chunk.id == Mention.chunk_id)
    .where(Mention.chunk_id.in_(_IDS), Entity.label.in_(bindparam("labels", expanding=True)))
    .group_by(Mention.chunk_id, _MENTIONED)
    .order_by(Mention.chunk_id, _MENTIONED)  # the same order however the chunks are batched
)
# The chunks among ``:ids`` that name an entity with a label among ``:labels`` other than the
# canonical ids ``:besides``: each chunk's mentions are read only up to the first such.
_NAMING = select(Chunk.id).where(
    Chunk.id.in_(_IDS),
    select(Mention.id)
    .join(Entity, Entity.id == Mention.entity_id)
    .where(
        Mention.chunk_id == Chunk.id,
        _NAMES,
        Entity.label.in_(bindparam("labels", expanding=True)),
        _MENTIONED.not_in(bindparam("besides", expanding=True)),
    )
    .exists(),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ChunkWrite:
    """A chunk to store, with what extraction found in it (offsets relative to the chunk)."""

    id: str
    ordinal: int
    start: int
    end: int
    text: str
    content_hash: str
    extraction: Extraction = field(default_factory=Extraction)


@dataclass
class DocumentWrite:
    """A memory to store."""

    id: str
    namespace: str
    doc_key: str
    external_id: str | None
    source: str | None
    text: str
    content_hash: str
    metadata: dict[str, Any]
    observed_at: datetime
    chunks: list[ChunkWrite] = field(default_factory=list)


@dataclass
class WriteResult:
    """What happened to one :class:`DocumentWrite`."""

    document_id: str
    created: bool  # False: an identical document was already stored (nothing written)
    chunk_ids: list[str]
    removed_chunk_ids: list[str]  # chunks of an earlier version, to drop from the vector index


@dataclass
class ChunkRow:
    id: str
    document_id: str
    namespace: str
    text: str
    start: int
    end: int
    external_id: str | None
    metadata: dict[str, Any]
    observed_at: datetime | None
    created_at: datetime | None = None  # when it was written: memories of one time keep the order given


@dataclass
class DocumentRow:
    id: str
    namespace: str
    external_id: str | None
    chunk_ids: list[str]
    deleted: bool


class GraphStore:
    """SQLAlchemy-backed store of documents, chunks, entities, mentions and relations.

    Args:
        engine: a SQLAlchemy engine (SQLite or PostgreSQL through psycopg 3).
        auto_upgrade: bring the schema to head on open (the embedded default does); otherwise a
            database that is behind raises :class:`SchemaOutOfDateError`.
    """

    def __init__(self, engine: Engine, *, auto_upgrade: bool = False) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # SQLite has one writer at a time; serialise our writes instead of waiting on its lock.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        self._local = threading.local()  # the connection :meth:`reading` pins for a thread
        with self._errors("opening the database"):
            ensure_schema(engine, auto_upgrade=auto_upgrade)

    @classmethod
    def from_url(cls, url: str, *, auto_upgrade: bool = False) -> GraphStore:
        return cls(create_store_engine(url), auto_upgrade=auto_upgrade)

    def close(self) -> None:
        self.engine.dispose()

    # -- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Map SQLAlchemy errors to :class:`GraphStoreError` (the one place this happens)."""
        try:
            yield
        except GraphStoreError:
            raise
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            url = self.engine.url.render_as_string(hide_password=True)
            raise GraphStoreError(f"{doing} failed on {url}: {reason}") from exc
        except SQLAlchemyError as exc:
            raise GraphStoreError(f"{doing} failed: {exc}") from exc

    @contextmanager
    def _write(self, doing: str) -> Iterator[Connection]:
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with self._errors(doing), self.engine.begin() as conn:
                yield conn
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def reading(self, doing: str = "opening a connection") -> Iterator[Connection]:
        """Serve this thread's reads inside the block from one connection (a search runs a dozen
        statements; checking a connection out of the pool for each costs about 0.4 ms in all)."""
        if (pinned := getattr(self._local, "conn", None)) is not None:
            yield pinned
            return
        with self._errors(doing):
            conn = self.engine.connect()
        self._local.conn = conn
        try:
            yield conn
        finally:
            self._local.conn = None
            conn.close()

    @contextmanager
    def _read(self, doing: str) -> Iterator[Connection]:
        with self.reading(doing) as conn, self._errors(doing):
            yield conn

    def _insert(self, table: Any) -> Any:
        return (sqlite.insert if self.dialect == "sqlite" else postgresql.insert)(table)

    # -- writes ------------------------------------------------------------------------------

    def write_documents(self, docs: Sequence[DocumentWrite]) -> list[WriteResult]:
        """Store documents, their chunks and their graph in one transaction.

        A document whose ``(namespace, doc_key)`` is stored with the same content is left as it
        is (``created=False``); one stored with other content is replaced.
        """
        if not docs:
            return []
        with self._write("storing documents") as conn:
            existing = self._existing_documents(conn, docs)
            results: list[WriteResult] = []
            to_write: list[DocumentWrite] = []
            removed: dict[str, list[str]] = {}
            for doc in docs:
                found = existing.get((doc.namespace, doc.doc_key))
                if found is not None and found["content_hash"] == doc.content_hash and found["deleted_at"] is None:
                    results.append(WriteResult(found["id"], False, found["chunk_ids"], []))
                    continue
                if found is not None:
                    removed[doc.id] = found["chunk_ids"]
                    self._remove_chunks(conn, found["chunk_ids"])
                    doc.id = found["id"]
                to_write.append(doc)
                results.append(WriteResult(doc.id, True, [c.id for c in doc.chunks], removed.get(doc.id, [])))
            # Two documents of one batch with the same key: the later one wins, as with add().
            unique = list({(d.namespace, d.doc_key): d for d in to_write}.values())
            if unique:
                self._upsert_documents(conn, unique, existing)
                self._insert_chunks(conn, unique)
                self._write_graph(conn, unique)
        return results

    def _existing_documents(
        self, conn: Connection, docs: Sequence[DocumentWrite]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        keys = list({(d.namespace, d.doc_key) for d in docs})
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for batch in _batches(keys):
            rows = conn.execute(
                select(
                    Document.id, Document.namespace, Document.doc_key, Document.content_hash, Document.deleted_at
                ).where(tuple_(Document.namespace, Document.doc_key).in_(batch))
            ).all()
            for row in rows:
                found[(row.namespace, row.doc_key)] = {
                    "id": row.id,
                    "content_hash": row.content_hash,
                    "deleted_at": row.deleted_at,
                    "chunk_ids": [],
                }
        if found:
            by_id = {v["id"]: v for v in found.values()}
            for batch in _batches(list(by_id)):
                for row in conn.execute(
                    select(Chunk.id, Chunk.document_id).where(Chunk.document_id.in_(batch)).order_by(Chunk.ordinal)
                ):
                    by_id[row.document_id]["chunk_ids"].append(row.id)
        return found

    def _upsert_documents(
        self, conn: Connection, docs: list[DocumentWrite], existing: dict[tuple[str, str], Any]
    ) -> None:
        now = utcnow()
        # Each document is written a microsecond after the one before it: memories given one
        # observed_at (a transcript's session) keep the order they were given in (turns_after).
        rows = [
            {
                "id": d.id,
                "namespace": d.namespace,
                "doc_key": d.doc_key,
                "external_id": d.external_id,
                "source": d.source,
                "content_hash": d.content_hash,
                "text": d.text,
                "metadata": d.metadata,  # the column's name (the attribute is .meta)
                "observed_at": d.observed_at,
                "created_at": now + timedelta(microseconds=i),
                "deleted_at": None,
            }
            for i, d in enumerate(d for d in docs if (d.namespace, d.doc_key) not in existing)
        ]
        for batch in _batches(rows):
            conn.execute(self._insert(Document), batch)
        for d in docs:
            if (d.namespace, d.doc_key) in existing:
                conn.execute(
                    update(Document)
                    .where(Document.id == d.id)
                    .values(
                        text=d.text,
                        content_hash=d.content_hash,
                        meta=d.metadata,
                        observed_at=d.observed_at,
                        source=d.source,
                        external_id=d.external_id,
                        deleted_at=None,
                    )
                )

    def _insert_chunks(self, conn: Connection, docs: list[DocumentWrite]) -> None:
        rows = [
            {
                "id": c.id,
                "document_id": d.id,
                "namespace": d.namespace,
                "ordinal": c.ordinal,
                "start": c.start,
                "end": c.end,
                "text": c.text,
                "content_hash": c.content_hash,
                "indexed_at": None,
            }
            for d in docs
            for c in d.chunks
        ]
        for batch in _batches(rows):
            conn.execute(self._insert(Chunk), batch)
            if self.dialect == "sqlite":
                conn.execute(
                    text("INSERT INTO chunks_fts (chunk_id, namespace, text) VALUES (:id, :namespace, :text)"),
                    [{"id": r["id"], "namespace": r["namespace"], "text": r["text"]} for r in batch],
                )

    def _write_graph(self, conn: Connection, docs: list[DocumentWrite]) -> None:
        # 1. entities: one upsert per distinct (namespace, label, key), counts summed.
        entity_rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        aliases: dict[tuple[tuple[str, str, str], str], dict[str, Any]] = {}
        for d in docs:
            for c in d.chunks:
                for e in c.extraction.entities:
                    ekey = (d.namespace, e.label, e.key)
                    row = entity_rows.get(ekey)
                    if row is None:
                        row = entity_rows[ekey] = {
                            "namespace": d.namespace,
                            "label": e.label,
                            "key": e.key,
                            "name": e.name[:255],
                            "attributes": dict(e.attributes),
                            "mention_count": 0,
                            "first_seen": d.observed_at,
                            "last_seen": d.observed_at,
                        }
                    row["mention_count"] += 1
                    row["first_seen"] = min(row["first_seen"], d.observed_at)
                    row["last_seen"] = max(row["last_seen"], d.observed_at)
                    if not e.pronoun:  # "I"/"my" are not names of the speaker
                        akey = normalize_key(e.text)
                        alias = aliases.setdefault((ekey, akey), {"alias": e.text[:255], "alias_key": akey, "count": 0})
                        alias["count"] += 1
        entity_ids = self._upsert_entities(conn, list(entity_rows.values()))

        alias_rows = [
            {"entity_id": entity_ids[ekey], "namespace": ekey[0], **alias} for (ekey, _), alias in aliases.items()
        ]
        stmt = self._insert(EntityAlias)
        stmt = stmt.on_conflict_do_update(
            index_elements=["entity_id", "alias_key"], set_={"count": EntityAlias.count + stmt.excluded.count}
        )
        for batch in _batches(sorted(alias_rows, key=lambda r: (r["entity_id"], r["alias_key"]))):
            conn.execute(stmt, batch)

        # 2. mentions, 3. relations and their evidence.
        mention_rows: list[dict[str, Any]] = []
        relation_rows: dict[tuple[str, int, str, int], dict[str, Any]] = {}
        evidence: list[tuple[tuple[str, int, str, int], dict[str, Any]]] = []
        for d in docs:
            for c in d.chunks:
                ids = [entity_ids[(d.namespace, e.label, e.key)] for e in c.extraction.entities]
                for e, eid in zip(c.extraction.entities, ids, strict=True):
                    mention_rows.append(
                        {
                            "entity_id": eid,
                            "chunk_id": c.id,
                            "namespace": d.namespace,
                            "text": e.text[:255],
                            "start": c.start + e.start,
                            "end": c.start + e.end,
                            "sent_start": c.start + e.sent_start,
                            "sent_end": c.start + e.sent_end,
                        }
                    )
                for r in c.extraction.relations:
                    rkey = (d.namespace, ids[r.source], r.predicate[:255], ids[r.target])
                    row = relation_rows.get(rkey)
                    if row is None:
                        row = relation_rows[rkey] = {
                            "namespace": d.namespace,
                            "source_id": rkey[1],
                            "predicate": rkey[2],
                            "target_id": rkey[3],
                            "count": 0,
                            "confidence": 0.0,
                            "extractor_version": EXTRACTOR_VERSION,
                            "first_seen": d.observed_at,
                            "last_seen": d.observed_at,
                        }
                    row["count"] += 1
                    row["confidence"] = max(row["confidence"], r.confidence)
                    row["first_seen"] = min(row["first_seen"], d.observed_at)
                    row["last_seen"] = max(row["last_seen"], d.observed_at)
                    evidence.append(
                        (
                            rkey,
                            {
                                "chunk_id": c.id,
                                "namespace": d.namespace,
                                "sentence": r.sentence,
                                "start": c.start + r.sent_start,
                                "end": c.start + r.sent_end,
                                "confidence": r.confidence,
                            },
                        )
                    )
        stmt = self._insert(Mention).on_conflict_do_nothing(index_elements=["chunk_id", "entity_id", "start"])
        for batch in _batches(mention_rows):
            conn.execute(stmt, batch)

        relation_ids = self._upsert_relations(conn, list(relation_rows.values()))
        evidence_rows = [{"relation_id": relation_ids[rkey], **row} for rkey, row in evidence]
        stmt = self._insert(RelationEvidence).on_conflict_do_nothing(
            index_elements=["relation_id", "chunk_id", "start"]
        )
        for batch in _batches(evidence_rows):
            conn.execute(stmt, batch)

    def _upsert_entities(self, conn: Connection, rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
        stmt = self._insert(Entity)
        stmt = stmt.on_conflict_do_update(
            index_elements=["namespace", "label", "key"],
            set_={
                "mention_count": Entity.mention_count + stmt.excluded.mention_count,
                "first_seen": func.min(Entity.first_seen, stmt.excluded.first_seen)
                if self.dialect == "sqlite"
                else func.least(Entity.first_seen, stmt.excluded.first_seen),
                "last_seen": func.max(Entity.last_seen, stmt.excluded.last_seen)
                if self.dialect == "sqlite"
                else func.greatest(Entity.last_seen, stmt.excluded.last_seen),
            },
        ).returning(Entity.id, Entity.namespace, Entity.label, Entity.key)
        ids: dict[tuple[str, str, str], int] = {}
        # Sorted, so concurrent writers lock rows in the same order (no deadlocks on PostgreSQL).
        for batch in _batches(sorted(rows, key=lambda r: (r["namespace"], r["label"], r["key"]))):
            for row in conn.execute(stmt.values(batch)):
                ids[(row.namespace, row.label, row.key)] = row.id
        return ids

    def _upsert_relations(self, conn: Connection, rows: list[dict[str, Any]]) -> dict[tuple[str, int, str, int], int]:
        stmt = self._insert(Relation)
        stmt = stmt.on_conflict_do_update(
            index_elements=["namespace", "source_id", "predicate", "target_id"],
            set_={
                "count": Relation.count + stmt.excluded.count,
                "confidence": func.max(Relation.confidence, stmt.excluded.confidence)
                if self.dialect == "sqlite"
                else func.greatest(Relation.confidence, stmt.excluded.confidence),
                "last_seen": func.max(Relation.last_seen, stmt.excluded.last_seen)
                if self.dialect == "sqlite"
                else func.greatest(Relation.last_seen, stmt.excluded.last_seen),
            },
        ).returning(Relation.id, Relation.namespace, Relation.source_id, Relation.predicate, Relation.target_id)
        ids: dict[tuple[str, int, str, int], int] = {}
        ordered = sorted(rows, key=lambda r: (r["namespace"], r["source_id"], r["predicate"], r["target_id"]))
        for batch in _batches(ordered):
            for row in conn.execute(stmt.values(batch)):
                ids[(row.namespace, row.source_id, row.predicate, row.target_id)] = row.id
        return ids

    def _remove_chunks(self, conn: Connection, chunk_ids: list[str]) -> None:
        """Delete chunks and everything derived from them, keeping graph counts true."""
        if not chunk_ids:
            return
        entities: set[int] = set()  # whose mentions, and relations whose evidence, are counted down
        relations: set[int] = set()
        for batch in _batches(chunk_ids):
            mention_counts = conn.execute(
                select(Mention.entity_id, func.count()).where(Mention.chunk_id.in_(batch)).group_by(Mention.entity_id)
            ).all()
            evidence_counts = conn.execute(
                select(RelationEvidence.relation_id, func.count())
                .where(RelationEvidence.chunk_id.in_(batch))
                .group_by(RelationEvidence.relation_id)
            ).all()
            alias_counts = conn.execute(
                select(Mention.entity_id, Mention.text, func.count())
                .where(Mention.chunk_id.in_(batch))
                .group_by(Mention.entity_id, Mention.text)
            ).all()
            entities.update(eid for eid, _ in mention_counts)
            relations.update(rid for rid, _ in evidence_counts)
            conn.execute(delete(RelationEvidence).where(RelationEvidence.chunk_id.in_(batch)))
            conn.execute(delete(Mention).where(Mention.chunk_id.in_(batch)))
            if mention_counts:
                conn.execute(
                    update(Entity)
                    .where(Entity.id == bindparam("eid"))
                    .values(mention_count=Entity.mention_count - bindparam("n")),
                    [{"eid": eid, "n": n} for eid, n in mention_counts],
                )
            if alias_counts:
                conn.execute(
                    update(EntityAlias)
                    .where(and_(EntityAlias.entity_id == bindparam("eid"), EntityAlias.alias_key == bindparam("akey")))
                    .values(count=EntityAlias.count - bindparam("n")),
                    [{"eid": eid, "akey": normalize_key(alias), "n": n} for eid, alias, n in alias_counts],
                )
            if evidence_counts:
                conn.execute(
                    update(Relation)
                    .where(Relation.id == bindparam("rid"))
                    .values(count=Relation.count - bindparam("n")),
                    [{"rid": rid, "n": n} for rid, n in evidence_counts],
                )
            if self.dialect == "sqlite":
                conn.execute(
                    text("DELETE FROM chunks_fts WHERE chunk_id IN :ids").bindparams(bindparam("ids", expanding=True)),
                    {"ids": batch},
                )
            conn.execute(delete(Chunk).where(Chunk.id.in_(batch)))
        # Whatever lost its last evidence goes: relations first, then entities nobody mentions.
        # Only what this removal counted down can have (the counts were true before it), so only
        # that is looked at: a scan of every relation and entity took 0.2 s per deleted document
        # in a store of 100,000 relations.
        for batch in _batches(sorted(relations)):
            gone = and_(Relation.id.in_(batch), Relation.count <= 0)
            conn.execute(
                delete(RelationEvidence).where(RelationEvidence.relation_id.in_(select(Relation.id).where(gone)))
            )
            conn.execute(delete(Relation).where(gone))
        for batch in _batches(sorted(entities)):
            conn.execute(delete(EntityAlias).where(EntityAlias.entity_id.in_(batch), EntityAlias.count <= 0))
            self._delete_unmentioned_entities(conn, among=batch)

    def _delete_unmentioned_entities(self, conn: Connection, *, among: Sequence[int] | None = None) -> int:
        """Delete the entities nobody mentions (those of ``among`` only, when given), with their
        aliases and relations; returns how many."""
        unmentioned = (
            Entity.mention_count <= 0 if among is None else and_(Entity.id.in_(among), Entity.mention_count <= 0)
        )
        orphans = select(Entity.id).where(unmentioned)
        conn.execute(delete(EntityAlias).where(EntityAlias.entity_id.in_(orphans)))
        doomed = select(Relation.id).where(Relation.source_id.in_(orphans) | Relation.target_id.in_(orphans))
        conn.execute(delete(RelationEvidence).where(RelationEvidence.relation_id.in_(doomed)))
        conn.execute(delete(Relation).where(Relation.source_id.in_(orphans) | Relation.target_id.in_(orphans)))
        return conn.execute(delete(Entity).where(unmentioned)).rowcount or 0

    def mark_indexed(self, chunk_ids: Sequence[str]) -> None:
        """Record that the vectors of these chunks are confirmed written."""
        if not chunk_ids:
            return
        now = utcnow()
        with self._write("marking chunks indexed") as conn:
            for batch in _batches(list(chunk_ids)):
                conn.execute(update(Chunk).where(Chunk.id.in_(batch)).values(indexed_at=now))

    def delete_document(self, document_id: str) -> DocumentRow | None:
        """Delete a document's chunks and graph contributions; keep a tombstone row.

        Returns the deleted document (with the chunk ids to remove from the vector index), or
        ``None`` when there is no such live document.
        """
        with self._write("deleting a document") as conn:
            row = conn.execute(
                select(Document.id, Document.namespace, Document.external_id, Document.deleted_at).where(
                    Document.id == document_id
                )
            ).first()
            if row is None or row.deleted_at is not None:
                return None
            chunk_ids = list(conn.execute(select(Chunk.id).where(Chunk.document_id == document_id)).scalars())
            self._remove_chunks(conn, chunk_ids)
            conn.execute(update(Document).where(Document.id == document_id).values(deleted_at=utcnow(), text=""))
        return DocumentRow(row.id, row.namespace, row.external_id, chunk_ids, True)

    # -- reads -------------------------------------------------------------------------------

    def document(self, document_id: str) -> DocumentRow | None:
        with self._read("reading a document") as conn:
            row = conn.execute(
                select(Document.id, Document.namespace, Document.external_id, Document.deleted_at).where(
                    Document.id == document_id
                )
            ).first()
            if row is None:
                return None
            chunk_ids = list(
                conn.execute(select(Chunk.id).where(Chunk.document_id == document_id).order_by(Chunk.ordinal)).scalars()
            )
        return DocumentRow(row.id, row.namespace, row.external_id, chunk_ids, row.deleted_at is not None)

    def content_hashes(self, namespace: str, doc_keys: Sequence[str]) -> dict[str, str]:
        """``doc_key -> content hash`` of the live documents among ``doc_keys``."""
        found: dict[str, str] = {}
        with self._read("looking up documents") as conn:
            for batch in _batches(list(dict.fromkeys(doc_keys))):
                rows = conn.execute(
                    select(Document.doc_key, Document.content_hash).where(
                        Document.namespace == namespace, Document.doc_key.in_(batch), Document.deleted_at.is_(None)
                    )
                )
                found.update({r.doc_key: r.content_hash for r in rows})
        return found

    def document_ids_by_key(self, namespace: str, doc_keys: Sequence[str]) -> dict[str, str]:
        """``doc_key -> document id`` for the live documents among ``doc_keys``."""
        found: dict[str, str] = {}
        with self._read("looking up documents") as conn:
            for batch in _batches(list(doc_keys)):
                rows = conn.execute(
                    select(Document.doc_key, Document.id).where(
                        Document.namespace == namespace, Document.doc_key.in_(batch), Document.deleted_at.is_(None)
                    )
                )
                found.update({r.doc_key: r.id for r in rows})
        return found

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, ChunkRow]:
        """Chunk rows joined with their document, by id, in one query per batch."""
        out: dict[str, ChunkRow] = {}
        if not chunk_ids:
            return out
        with self._read("reading chunks") as conn:
            for batch in _batches(list(dict.fromkeys(chunk_ids))):
                for r in conn.execute(_CHUNKS, {"ids": batch}).all():
                    out[r.id] = ChunkRow(
                        r.id,
                        r.document_id,
                        r.namespace,
                        r.text,
                        r.start,
                        r.end,
                        r.external_id,
                        dict(r.meta or {}),
                        r.observed_at,
                        r.created_at,
                    )
        return out

    def chunks_to_index(self, chunk_ids: Sequence[str] | None = None, *, limit: int | None = None) -> list[ChunkRow]:
        """Chunks whose vectors are not confirmed (all of them, or those among ``chunk_ids``)."""
        with self._read("listing unindexed chunks") as conn:
            query = select(Chunk.id).where(Chunk.indexed_at.is_(None)).order_by(Chunk.id)
            if chunk_ids is not None:
                query = query.where(Chunk.id.in_(list(chunk_ids)))
            if limit is not None:
                query = query.limit(limit)
            ids = list(conn.execute(query).scalars())
        rows = self.chunks(ids)
        return [rows[i] for i in ids if i in rows]

    def iter_chunk_ids(self, *, batch_size: int = 5000) -> Iterator[list[str]]:
        """Every chunk id, in batches (for verify)."""
        last = ""
        while True:
            with self._read("listing chunks") as conn:
                ids = list(
                    conn.execute(select(Chunk.id).where(Chunk.id > last).order_by(Chunk.id).limit(batch_size)).scalars()
                )
            if not ids:
                return
            yield ids
            last = ids[-1]

    def existing_chunk_ids(self, chunk_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self._read("checking chunks") as conn:
            for batch in _batches(list(chunk_ids)):
                found.update(conn.execute(select(Chunk.id).where(Chunk.id.in_(batch))).scalars())
        return found

    def keyword_search(
        self,
        query: str,
        *,
        namespace: str,
        limit: int,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[tuple[str, float]]:
        """Chunks matching any query term, best first (BM25 on SQLite, ``ts_rank_cd`` on PostgreSQL)."""
        terms = keyword_terms(query)
        if not terms:
            return []
        params: dict[str, Any] = {"ns": namespace, "limit": limit}
        time_filter = ""
        if since is not None:
            time_filter += " AND d.observed_at >= :since"
            params["since"] = _bind_time(since, self.dialect)
        if until is not None:
            time_filter += " AND d.observed_at < :until"
            params["until"] = _bind_time(until, self.dialect)
        join = " JOIN chunks c ON c.id = {cid} JOIN documents d ON d.id = c.document_id" if time_filter else ""
        if self.dialect == "sqlite":
            params["q"] = " OR ".join(f'"{t}"' for t in terms)
            sql = (
                "SELECT f.chunk_id AS id, -rank AS score FROM chunks_fts f"
                + join.format(cid="f.chunk_id")
                + " WHERE chunks_fts MATCH :q AND f.namespace = :ns"
                + time_filter
                + " ORDER BY rank LIMIT :limit"  # FTS5's rank is bm25()
            )
        else:
            params["q"] = " | ".join(terms)
            sql = (
                "SELECT c.id AS id, ts_rank_cd(c.tsv, q, 1) AS score FROM chunks c"
                " JOIN documents d ON d.id = c.document_id, to_tsquery('english', :q) q"
                " WHERE c.tsv @@ q AND c.namespace = :ns" + time_filter + " ORDER BY score DESC LIMIT :limit"
            )
        with self._read("keyword search") as conn:
            return [(r.id, float(r.score)) for r in conn.execute(text(sql), params).all()]

    def chunk_context(
        self, chunk_ids: Sequence[str]
    ) -> tuple[dict[str, list[EntityRef]], dict[str, list[RelationRef]]]:
        """What each chunk holds of the graph: the (canonical) entities it mentions, in the order
        of their first mention, and the relations it is evidence for, with that evidence. Two
        queries per batch of chunks: the relations' ends are among the entities the chunk
        mentions, read by the first (a third query reads any that is not)."""
        entities: dict[str, list[EntityRef]] = defaultdict(list)
        relations: dict[str, list[RelationRef]] = defaultdict(list)
        if not chunk_ids:
            return entities, relations
        refs: dict[int, EntityRef] = {}  # one per canonical entity: most recur across the chunks
        of_row: dict[int, EntityRef] = {}  # entity row -> its canonical entity
        listed: set[tuple[str, int]] = set()
        evidence: list[Any] = []
        with self._read("reading chunk context") as conn:
            for batch in _batches(list(dict.fromkeys(chunk_ids))):
                for chunk_id, row_id, eid, name, label, _ in conn.execute(_CHUNK_ENTITIES, {"ids": batch}).all():
                    if (ref := refs.get(eid)) is None:
                        ref = refs[eid] = EntityRef(eid, name, label)
                    of_row[row_id] = ref
                    if (chunk_id, eid) not in listed:  # merged rows: their canonical entity once
                        listed.add((chunk_id, eid))
                        entities[chunk_id].append(ref)
                evidence += conn.execute(_CHUNK_RELATIONS, {"ids": batch}).all()
            unread = list({end for row in evidence for end in (row.source_id, row.target_id)} - of_row.keys())
            for batch in _batches(unread):
                for row_id, eid, name, label in conn.execute(_CANONICAL_OF, {"ids": batch}).all():
                    of_row[row_id] = refs.setdefault(eid, EntityRef(eid, name, label))
        seen: set[tuple[str, int]] = set()
        for chunk_id, sentence, rid, predicate, confidence, source_id, target_id in evidence:
            if (chunk_id, rid) not in seen:  # one relation, two sentences of the chunk: the first
                seen.add((chunk_id, rid))
                relation = RelationRef(
                    rid, of_row[source_id], predicate, of_row[target_id], sentence, float(confidence)
                )
                relations[chunk_id].append(relation)
        return entities, relations

    def find_entities(self, namespace: str, keys: Iterable[str]) -> list[dict[str, Any]]:
        """Entities whose key or an alias key is among ``keys``, most mentioned first."""
        keys = list(dict.fromkeys(k for k in keys if k))
        if not keys:
            return []
        with self._read("looking up entities") as conn:
            by_key = select(Entity.id).where(Entity.namespace == namespace, Entity.key.in_(keys))
            by_alias = select(EntityAlias.entity_id).where(
                EntityAlias.namespace == namespace, EntityAlias.alias_key.in_(keys), EntityAlias.count > 0
            )
            matched = select(func.coalesce(Entity.merged_into, Entity.id)).where(Entity.id.in_(by_key.union(by_alias)))
            rows = conn.execute(
                select(Entity).where(Entity.id.in_(matched)).order_by(Entity.mention_count.desc(), Entity.id)
            )
            return [_entity_dict(e) for e in rows]

    def match_keys(self, namespace: str, keys: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """For each of ``keys`` that is an entity key or a live alias key of ``namespace``, the
        (canonical) entities it names (one query per 400 keys)."""
        keys = list(dict.fromkeys(k for k in keys if k))
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        with self._read("looking up entities") as conn:
            for batch in _batches(keys):
                for row in conn.execute(_MATCH_KEYS, {"ns": namespace, "keys": batch}).all():
                    out[row.k].append(_entity_dict(row))
        return out

    def find_entities_fuzzy(
        self, namespace: str, names: Iterable[str], *, min_ratio: float = 0.85, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Named entities whose key starts with a word of ``names`` and is the same name in other
        words: each word of the shorter a prefix of the next words of the longer ("Acme Corp" ~
        "Acme Corporation", "Bob" ~ "Bob Smith"), or a near spelling (``difflib`` ratio at least
        ``min_ratio``: "Acme Corportion" ~ "Acme Corporation"), best first. Index range scans only."""
        import difflib

        wanted = [normalize_key(n) for n in names if n and n.strip()]
        words = sorted({w for n in wanted for w in n.split() if len(w) > 2})
        if not words:
            return []
        # One range scan of the (namespace, key) index per word: key >= w AND key < w with its last
        # letter bumped. As one OR of ranges, SQLite's plan scanned the namespace (19 ms on 56,000
        # entities). The best ``limit * 4`` of each range hold the best of them all.
        found: dict[int, Any] = {}
        with self._read("matching entity names") as conn:
            for w in words:
                params = {"ns": namespace, "low": w, "high": w[:-1] + chr(ord(w[-1]) + 1), "limit": limit * 4}
                for r in conn.execute(_NAMES_FROM, params):
                    found.setdefault(r.id, r)
        rows = sorted(found.values(), key=lambda r: (-r.mention_count, r.id))[: limit * 4]

        def likeness(name: str, key: str) -> float:
            if _same_name(name, key):
                return 1.0
            matcher = difflib.SequenceMatcher(None, name, key)
            # The cheap upper bounds first: most candidates fail them (difflib's own advice).
            if matcher.real_quick_ratio() < min_ratio or matcher.quick_ratio() < min_ratio:
                return 0.0
            return matcher.ratio()

        scored = [(best, row) for row in rows if (best := max(likeness(n, row.key) for n in wanted)) >= min_ratio]
        scored.sort(key=lambda pair: (-pair[0], -pair[1].mention_count, pair[1].id))
        return [_entity_dict(row) for _, row in scored[:limit]]

    def find_dates(self, namespace: str, keys: Iterable[str]) -> list[dict[str, Any]]:
        """DATE entities of the given date keys and the dates closest around them: a month
        (``2025-03``) finds its days (``2025-03-13``), a day finds its month; a year finds only
        itself (every date of a year would link almost every dated memory). Exact key lookups
        only: an OR with ``LIKE '2025-03-%'`` read every date of the namespace (2.7 ms for 2,800)."""
        wanted: list[str] = []
        for key in keys:
            wanted.append(key)
            if len(key) == 7 and key[4] == "-":  # month
                wanted += [f"{key}-{day:02d}" for day in range(1, 32)]
            elif len(key) == 10:  # day
                wanted.append(key[:7])
        if not wanted:
            return []
        with self._read("looking up dates") as conn:
            return [
                _entity_dict(r) for r in conn.execute(_DATES, {"ns": namespace, "keys": list(dict.fromkeys(wanted))})
            ]

    def entity_members(self, entity_ids: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
        """The rows standing for the given (canonical) entities (see :meth:`_members`), as
        ``entity id -> given id``, and each given entity's mentions summed over those rows, read
        from the stored counts (kept at every write and delete, checked by ``verify``). One
        statement. Pass the first as ``members=`` to the entity reads below to resolve a set once
        for several of them."""
        if not entity_ids:
            return {}, {}
        return group_members(entity_ids, self.entity_member_rows(entity_ids))

    def entity_member_rows(self, entity_ids: Sequence[int]) -> dict[int, MemberRows]:
        """What :meth:`entity_members` is computed from, by given entity: read once, it serves
        any set of these entities (:func:`group_members`). One statement per 400 ids."""
        if not entity_ids:
            return {}
        with self._read("resolving entities") as conn:
            return self._member_rows(conn, entity_ids)

    def _members(self, conn: Connection, entity_ids: Sequence[int]) -> dict[int, int]:
        """``entity id -> given id`` for the given (canonical) entities, the entities merged into
        them, and their same-name siblings under another label (the NER calling one company ORG
        in one memory and LOC in the next): the rows a name stands for at query time."""
        return group_members(entity_ids, self._member_rows(conn, entity_ids))[0]

    def _member_rows(self, conn: Connection, entity_ids: Sequence[int]) -> dict[int, MemberRows]:
        ids = list(dict.fromkeys(entity_ids))
        out = {i: MemberRows([], []) for i in ids}
        for batch in _batches(ids):
            for r in conn.execute(_MEMBERS, {"ids": batch}).all():
                row = MemberRow(r.id, r.merged_into, r.namespace, r.key, int(r.mention_count))
                (out[r.given].same_name if r.kind == 0 else out[r.given].merged).append(row)
        return out

    def entity_details(self, entity_id: int, *, max_relations: int = 50, max_mentions: int = 50) -> dict[str, Any]:
        """Aliases, relations (with evidence), mentions and mention totals of one entity and the
        rows that stand for it (merged aliases, same-name siblings)."""
        with self._read("reading an entity") as conn:
            members = list(self._members(conn, [entity_id]))
            # The counts of every row the entity stands for: "Maya" merged into "Maya Patel" keeps its own.
            totals = conn.execute(
                select(
                    func.sum(Entity.mention_count).label("mentions"),
                    func.min(Entity.first_seen).label("first_seen"),
                    func.max(Entity.last_seen).label("last_seen"),
                ).where(Entity.id.in_(members))
            ).one()
            aliases = list(
                dict.fromkeys(
                    conn.execute(
                        select(EntityAlias.alias)
                        .where(EntityAlias.entity_id.in_(members), EntityAlias.count > 0)
                        .order_by(EntityAlias.count.desc(), EntityAlias.alias)
                    ).scalars()
                )
            )
            evidence = (
                select(RelationEvidence.sentence)
                .where(RelationEvidence.relation_id == Relation.id)
                .order_by(RelationEvidence.id)
                .limit(1)
                .scalar_subquery()
            )
            relations = [
                RelationRef(
                    r.id,
                    EntityRef(r.sid, r.sname, r.slabel),
                    r.predicate,
                    EntityRef(r.tid, r.tname, r.tlabel),
                    r.evidence or "",
                    float(r.confidence),
                )
                for r in conn.execute(
                    _join_ends(
                        select(Relation.id, Relation.predicate, Relation.confidence, evidence.label("evidence"), *_ENDS)
                    )
                    .where(Relation.source_id.in_(members) | Relation.target_id.in_(members))
                    .order_by(Relation.count.desc(), Relation.confidence.desc(), Relation.id)
                    .limit(max_relations)
                )
            ]
            mentions = [
                dict(r._mapping)
                for r in conn.execute(
                    select(
                        Mention.chunk_id,
                        Chunk.document_id,
                        Mention.text,
                        Mention.start,
                        Mention.end,
                        Mention.sent_start,
                        Mention.sent_end,
                        Chunk.start.label("chunk_start"),
                        Chunk.text.label("chunk_text"),
                        Document.observed_at,
                    )
                    .join(Chunk, Chunk.id == Mention.chunk_id)
                    .join(Document, Document.id == Chunk.document_id)
                    .where(Mention.entity_id.in_(members))
                    .order_by(Document.observed_at, Mention.start)
                    .limit(max_mentions)
                )
            ]
        return {
            "aliases": aliases,
            "relations": relations,
            "mentions": mentions,
            "mention_count": int(totals.mentions or 0),
            "first_seen": totals.first_seen,
            "last_seen": totals.last_seen,
        }

    def chunks_for_entities(
        self,
        namespace: str,
        weights: dict[int, float],
        *,
        limit: int,
        salient: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
        members: Mapping[int, int] | None = None,
    ) -> list[tuple[str, float]]:
        """Chunks mentioning the weighted (canonical) entities, ``(chunk_id, summed weight)``,
        best first. With ``salient``, only mentions in a chunk's first sentence count: the
        chunks that are *about* the entity rather than passing mentions. ``members``: the first
        result of :meth:`entity_members`, covering the weighted entities."""
        if not weights:
            return []
        scores: dict[str, float] = defaultdict(float)
        with self._read("finding chunks of entities") as conn:
            members = _restrict(members, weights) if members is not None else self._members(conn, list(weights))
            query = _entity_chunks_query(salient, since is not None, until is not None)
            for batch in _batches(list(members)):
                params = {"ns": namespace, "ids": batch, "since": since, "until": until}
                for r in conn.execute(query, params).all():
                    scores[r.chunk_id] += weights[members[r.entity_id]] * float(r.n)
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]

    def neighbours(
        self, namespace: str, entity_ids: Sequence[int], *, fanout: int, members: Mapping[int, int] | None = None
    ) -> list[dict[str, Any]]:
        """Relations touching the (canonical) ``entity_ids``: at most ``fanout`` per entity,
        strongest first, endpoints reported as canonical ids."""
        if not entity_ids:
            return []
        strength = Relation.count * Relation.confidence
        rows: list[dict[str, Any]] = []
        with self._read("expanding the graph") as conn:
            members = _restrict(members, entity_ids) if members is not None else self._members(conn, entity_ids)
            by_canonical: dict[int, list[int]] = defaultdict(list)
            for member, canonical in members.items():
                by_canonical[canonical].append(member)
            others: set[int] = set()
            for canonical, ids in by_canonical.items():
                for r in conn.execute(
                    select(Relation.id, Relation.source_id, Relation.target_id, Relation.predicate, strength.label("w"))
                    .where(Relation.namespace == namespace, Relation.source_id.in_(ids) | Relation.target_id.in_(ids))
                    .order_by(strength.desc(), Relation.id)
                    .limit(fanout)
                ):
                    other = r.target_id if r.source_id in ids else r.source_id
                    others.add(other)
                    rows.append(
                        {
                            "relation_id": r.id,
                            "from": canonical,
                            "to": other,
                            "predicate": r.predicate,
                            "weight": float(r.w),
                        }
                    )
            canon = dict(
                conn.execute(
                    select(Entity.id, func.coalesce(Entity.merged_into, Entity.id)).where(Entity.id.in_(list(others)))
                ).all()
            )
        for row in rows:
            row["to"] = canon.get(row["to"], row["to"])
        return rows

    def relations_among(
        self, namespace: str, entity_ids: Sequence[int], *, members: Mapping[int, int] | None = None
    ) -> list[dict[str, Any]]:
        """Relations whose two ends are both among the (canonical) ``entity_ids``."""
        if len(entity_ids) < 2:
            return []
        with self._read("reading relations among entities") as conn:
            members = _restrict(members, entity_ids) if members is not None else self._members(conn, entity_ids)
            ids = list(members)
            return [
                {"relation_id": r.id, "from": members[r.source_id], "to": members[r.target_id], "weight": float(r.w)}
                for r in conn.execute(_RELATIONS_AMONG, {"ns": namespace, "ids": ids})
                if members[r.source_id] != members[r.target_id]
            ]

    def evidence_chunks(
        self,
        relation_ids: Sequence[int],
        *,
        limit: int,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[tuple[str, int]]:
        """``(chunk_id, relation_id)`` pairs of the evidence for these relations."""
        if not relation_ids:
            return []
        query = _evidence_query(since is not None, until is not None)
        params = {"ids": list(dict.fromkeys(relation_ids)), "limit": limit, "since": since, "until": until}
        with self._read("reading relation evidence") as conn:
            return [(r.chunk_id, r.relation_id) for r in conn.execute(query, params).all()]

    def chunk_mentions(self, chunk_ids: Sequence[str], *, labels: Iterable[str]) -> dict[str, list[tuple[int, bool]]]:
        """``chunk_id -> [(canonical entity id, in first sentence)]`` for these chunks, of the
        entities with one of ``labels`` (one query)."""
        out: dict[str, list[tuple[int, bool]]] = defaultdict(list)
        if not chunk_ids:
            return out
        params = {"ids": list(chunk_ids), "labels": sorted(labels)}
        with self._read("reading chunk mentions") as conn:
            for r in conn.execute(_CHUNK_MENTIONS, params).all():
                out[r.chunk_id].append((int(r.eid), bool(r.first)))
        return out

    def chunks_naming(
        self, chunk_ids: Sequence[str], labels: Iterable[str], *, besides: Iterable[int] = ()
    ) -> set[str]:
        """Those of ``chunk_ids`` that name an entity with one of ``labels``, other than the
        entities ``besides`` (canonical ids)."""
        params = {"labels": sorted(labels), "besides": sorted(besides)}
        with self._read("reading chunk mentions") as conn:
            return {
                cid
                for batch in _batches(list(dict.fromkeys(chunk_ids)))
                for (cid,) in conn.execute(_NAMING, {"ids": batch} | params)
            }

    def dated_chunks(self, chunk_ids: Sequence[str]) -> set[str]:
        """Those of ``chunk_ids`` that mention a DATE."""
        return self.chunks_naming(chunk_ids, ["DATE"])

    def count_in_namespace(self, namespace: str, chunk_ids: Sequence[str]) -> int:
        """How many of ``chunk_ids`` are chunks of ``namespace``. Their namespaces are read by
        primary key and compared here: given ``namespace = ? AND id IN (...)``, SQLite (without
        statistics) walks the namespace's index instead, 0.17 against 0.015 ms for 20 ids."""
        with self._read("counting chunks") as conn:
            return sum(
                ns == namespace
                for batch in _batches(list(dict.fromkeys(chunk_ids)))
                for ns in conn.execute(_NAMESPACES_OF, {"ids": batch}).scalars()
            )

    def turns_after(
        self,
        namespace: str,
        seeds: Sequence[ChunkRow],
        *,
        span: int,
        gap: timedelta,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[list[str]]:
        """For each of ``seeds``, the first chunks of the next ``span`` turns of a conversation
        in ``namespace``: memories whose metadata names a speaker, observed after the seed and at
        most ``gap`` later, or observed at the same time and written after it (a session stamped
        with one time), inside ``since``/``until``. One statement."""
        if not seeds:
            return []
        params: dict[str, Any] = {"ns": namespace}
        params |= {"since": since} if since is not None else {}
        params |= {"until": until} if until is not None else {}
        for i, seed in enumerate(seeds):
            params[f"t{i}"], params[f"u{i}"] = seed.observed_at, seed.observed_at + gap
        statement = _turns_after(len(seeds), since is not None, until is not None)
        rows, seen = [], set()
        with self._read("reading conversation turns") as conn:
            for r in conn.execute(statement, params):
                if r.id not in seen and r.observed_at is not None and speaker_of(r.meta or {}):
                    seen.add(r.id)
                    rows.append((r.observed_at, r.created_at, r.id))
        return [
            [
                cid
                for at, written, cid in rows
                if seed.observed_at < at <= seed.observed_at + gap
                or (at == seed.observed_at and seed.created_at is not None and written > seed.created_at)
            ][:span]
            for seed in seeds
        ]

    def turn_before(
        self, namespace: str, observed_at: datetime, *, gap: timedelta, besides: str | None = None
    ) -> tuple[str, list[tuple[str, str, str]]] | None:
        """The turn of a conversation in ``namespace`` before a memory observed at ``observed_at``:
        the latest memory whose metadata names a speaker, observed at most ``gap`` earlier or at the
        same time (a session stamped with one time), other than the document ``besides``. Its
        speaker and the ``(label, key, name)`` of the canonical entities its last chunk mentions,
        or ``None`` (two statements)."""
        params = {"ns": namespace, "lo": observed_at - gap, "t": observed_at, "doc": besides or ""}
        with self._read("reading the turn before") as conn:
            row = conn.execute(_MEMORY_BEFORE, params).first()
            if row is None or (speaker := speaker_of(row.meta or {})) is None:
                return None  # nothing just before, or no turn: the conversation does not go on
            entities = conn.execute(_LAST_CHUNK_ENTITIES, {"doc": row.id}).all()
        return speaker, [(r.label, r.key, r.name) for r in entities]

    def namespace_chunks(self, namespace: str) -> tuple[int, bool]:
        """How many chunks ``namespace`` holds, and whether it holds every chunk stored (one statement)."""
        with self._read("counting chunks") as conn:
            count, others = conn.execute(_NAMESPACE_CHUNKS, {"ns": namespace}).one()
            return int(count), not others

    # -- alias resolution (merges) ------------------------------------------------------------

    def merge_entities(self, entity_id: int, into_id: int, *, reason: str) -> int:
        """Make ``entity_id`` an alias of ``into_id`` (recorded, undoable); returns the merge id.

        Raises:
            ConfigError: the entities are the same, in different namespaces, or already merged.
        """
        with self._write("merging entities") as conn:
            return self._merge(conn, entity_id, into_id, reason)

    def _merge(self, conn: Connection, entity_id: int, into_id: int, reason: str) -> int:
        rows = {
            r.id: r
            for r in conn.execute(
                select(Entity.id, Entity.namespace, Entity.merged_into).where(Entity.id.in_([entity_id, into_id]))
            )
        }
        if entity_id == into_id or len(rows) != 2:
            raise ConfigError(f"cannot merge entity {entity_id} into {into_id}: both must exist and differ")
        if rows[entity_id].namespace != rows[into_id].namespace:
            raise ConfigError(f"cannot merge entities {entity_id} and {into_id} across namespaces")
        if rows[entity_id].merged_into is not None or rows[into_id].merged_into is not None:
            raise ConfigError(f"entity {entity_id} or {into_id} is already merged; undo that merge first")
        # Entities already merged into the alias follow it to the new canonical entity.
        conn.execute(update(Entity).where(Entity.merged_into == entity_id).values(merged_into=into_id))
        conn.execute(update(Entity).where(Entity.id == entity_id).values(merged_into=into_id))
        result = conn.execute(
            self._insert(EntityMerge).returning(EntityMerge.id),
            {
                "namespace": rows[entity_id].namespace,
                "entity_id": entity_id,
                "into_id": into_id,
                "reason": reason[:255],
                "created_at": utcnow(),
            },
        )
        return int(result.scalar_one())

    def undo_merge(self, merge_id: int) -> None:
        """Split a merged entity off again.

        Raises:
            NotFoundError: there is no such merge, or it was already undone.
        """
        with self._write("undoing a merge") as conn:
            merge = conn.execute(
                select(EntityMerge).where(EntityMerge.id == merge_id, EntityMerge.undone_at.is_(None))
            ).first()
            if merge is None:
                raise NotFoundError("merge", merge_id)
            conn.execute(
                update(Entity)
                .where(Entity.id == merge.entity_id, Entity.merged_into == merge.into_id)
                .values(merged_into=None)
            )
            conn.execute(update(EntityMerge).where(EntityMerge.id == merge_id).values(undone_at=utcnow()))

    def merges(self, namespace: str) -> list[dict[str, Any]]:
        """The merges of a namespace, newest first, with both entities' names."""
        alias, into = Entity.__table__.alias("a"), Entity.__table__.alias("i")
        with self._read("listing merges") as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    select(
                        EntityMerge.id,
                        EntityMerge.entity_id,
                        alias.c.name.label("entity_name"),
                        EntityMerge.into_id,
                        into.c.name.label("into_name"),
                        EntityMerge.reason,
                        EntityMerge.created_at,
                        EntityMerge.undone_at,
                    )
                    .join(alias, alias.c.id == EntityMerge.entity_id)
                    .join(into, into.c.id == EntityMerge.into_id)
                    .where(EntityMerge.namespace == namespace)
                    .order_by(EntityMerge.id.desc())
                )
            ]

    def resolve_aliases(
        self, namespace: str, keys: Iterable[tuple[str, str]], *, labels: Iterable[str] = ("PERSON", "ORG")
    ) -> list[int]:
        """Merge one-word names into the one longer name of the namespace they can only mean.

        For each ``(label, key)`` touched by a write: a one-word entity ("bob") whose word starts
        or ends exactly one longer entity of the same label ("bob smith") is merged into it; an
        ambiguous one ("bob smith", "bob jones") is left alone. Returns the merge ids.
        """
        keys = set(keys)
        wanted = {(label, key) for label, key in keys if label in set(labels)}
        merges: list[int] = []
        with self._write("resolving aliases") as conn:
            # A proper noun the NER missed in one memory ("Vantage Robotics" as a CONCEPT) is the
            # named entity another memory found, when exactly one named entity has that name.
            for batch in _batches(sorted({key for _, key in keys})):
                same_key: dict[str, list[Any]] = defaultdict(list)
                for r in conn.execute(
                    select(Entity.id, Entity.key, Entity.label).where(
                        Entity.namespace == namespace, Entity.key.in_(batch), Entity.merged_into.is_(None)
                    )
                ):
                    same_key[r.key].append(r)
                for key, rows in same_key.items():
                    named = [r for r in rows if r.label not in ("CONCEPT", "DATE", "TIME")]
                    concepts = [r for r in rows if r.label == "CONCEPT"]
                    if len(named) == 1 and concepts:
                        for concept in concepts:
                            merges.append(
                                self._merge(conn, concept.id, named[0].id, f"same name as {named[0].label} '{key}'")
                            )
            short: set[tuple[str, str]] = set()
            for label, key in wanted:
                words = key.split()
                if len(words) == 1:
                    short.add((label, key))
                elif len(words) > 1:
                    short.update({(label, words[0]), (label, words[-1])})
            for label, word in sorted(short):
                if len(word) < 3:
                    continue
                alias = conn.execute(
                    select(Entity.id).where(
                        Entity.namespace == namespace,
                        Entity.label == label,
                        Entity.key == word,
                        Entity.merged_into.is_(None),
                    )
                ).scalar()
                if alias is None:
                    continue
                escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                candidates = list(
                    conn.execute(
                        select(Entity.id)
                        .where(
                            Entity.namespace == namespace,
                            Entity.label == label,
                            Entity.merged_into.is_(None),
                            Entity.id != alias,
                            Entity.key.like(f"{escaped} %", escape="\\") | Entity.key.like(f"% {escaped}", escape="\\"),
                        )
                        .limit(2)
                    ).scalars()
                )
                if len(candidates) == 1:
                    merges.append(
                        self._merge(conn, alias, candidates[0], f"unique {label.lower()} name containing '{word}'")
                    )
        return merges

    def stats(self, namespace: str | None = None) -> dict[str, int]:
        """Row counts (live documents only), for one namespace or all."""
        counts: dict[str, int] = {}
        with self._read("counting rows") as conn:
            for name, model, extra in (
                ("documents", Document, Document.deleted_at.is_(None)),
                ("chunks", Chunk, None),
                ("entities", Entity, None),
                ("relations", Relation, None),
                ("mentions", Mention, None),
            ):
                query = select(func.count()).select_from(model)
                if namespace is not None:
                    query = query.where(model.namespace == namespace)
                if extra is not None:
                    query = query.where(extra)
                counts[name] = int(conn.execute(query).scalar_one())
        return counts

    def entity_rows(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every entity (of one namespace or all), as dicts."""
        query = select(Entity).order_by(Entity.namespace, Entity.id)
        if namespace is not None:
            query = query.where(Entity.namespace == namespace)
        with self._read("reading entities") as conn:
            return [_entity_dict(e) for e in conn.execute(query)]

    def relation_rows(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every relation with its first evidence sentence, as dicts."""
        evidence = (
            select(RelationEvidence.sentence)
            .where(RelationEvidence.relation_id == Relation.id)
            .order_by(RelationEvidence.id)
            .limit(1)
            .scalar_subquery()
        )
        query = select(
            Relation.id,
            Relation.namespace,
            Relation.source_id,
            Relation.predicate,
            Relation.target_id,
            Relation.count,
            Relation.confidence,
            Relation.first_seen,
            Relation.last_seen,
            evidence.label("evidence"),
        ).order_by(Relation.namespace, Relation.id)
        if namespace is not None:
            query = query.where(Relation.namespace == namespace)
        with self._read("reading relations") as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def mention_rows(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every mention with its document and observation time, as dicts."""
        query = (
            select(
                Mention.id,
                Mention.namespace,
                Mention.entity_id,
                Mention.chunk_id,
                Chunk.document_id,
                Mention.text,
                Mention.start,
                Mention.end,
                Document.observed_at,
            )
            .join(Chunk, Chunk.id == Mention.chunk_id)
            .join(Document, Document.id == Chunk.document_id)
            .order_by(Mention.namespace, Document.observed_at, Mention.id)
        )
        if namespace is not None:
            query = query.where(Mention.namespace == namespace)
        with self._read("reading mentions") as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def namespaces(self) -> list[str]:
        with self._read("listing namespaces") as conn:
            return list(conn.execute(select(Document.namespace).distinct().order_by(Document.namespace)).scalars())

    # -- consistency -------------------------------------------------------------------------

    def graph_problems(self) -> dict[str, int]:
        """Counts of dangling rows and counters that disagree with the rows they count."""
        with self._read("checking the graph") as conn:
            dangling_mentions = conn.execute(
                select(func.count())
                .select_from(Mention)
                .where(~Mention.chunk_id.in_(select(Chunk.id)) | ~Mention.entity_id.in_(select(Entity.id)))
            ).scalar_one()
            dangling_relations = (
                conn.execute(
                    select(func.count())
                    .select_from(Relation)
                    .where(
                        ~Relation.source_id.in_(select(Entity.id))
                        | ~Relation.target_id.in_(select(Entity.id))
                        | ~Relation.id.in_(select(RelationEvidence.relation_id))
                    )
                ).scalar_one()
                + conn.execute(
                    select(func.count())
                    .select_from(RelationEvidence)
                    .where(
                        ~RelationEvidence.chunk_id.in_(select(Chunk.id))
                        | ~RelationEvidence.relation_id.in_(select(Relation.id))
                    )
                ).scalar_one()
            )
            orphan_entities = conn.execute(
                select(func.count()).select_from(Entity).where(~Entity.id.in_(select(Mention.entity_id)))
            ).scalar_one()
            mention_totals = select(Mention.entity_id, func.count().label("n")).group_by(Mention.entity_id).subquery()
            count_mismatches = conn.execute(
                select(func.count())
                .select_from(Entity)
                .join(mention_totals, mention_totals.c.entity_id == Entity.id)
                .where(mention_totals.c.n != Entity.mention_count)
            ).scalar_one()
        return {
            "dangling_mentions": int(dangling_mentions),
            "dangling_relations": int(dangling_relations),
            "orphan_entities": int(orphan_entities),
            "count_mismatches": int(count_mismatches),
        }

    def repair_graph(self) -> None:
        """Remove dangling rows and recompute counters from the rows they count."""
        with self._write("repairing the graph") as conn:
            conn.execute(delete(Mention).where(~Mention.chunk_id.in_(select(Chunk.id))))
            conn.execute(delete(Mention).where(~Mention.entity_id.in_(select(Entity.id))))
            conn.execute(delete(RelationEvidence).where(~RelationEvidence.chunk_id.in_(select(Chunk.id))))
            conn.execute(delete(RelationEvidence).where(~RelationEvidence.relation_id.in_(select(Relation.id))))
            conn.execute(
                update(Entity).values(
                    mention_count=select(func.count())
                    .select_from(Mention)
                    .where(Mention.entity_id == Entity.id)
                    .scalar_subquery()
                )
            )
            conn.execute(
                update(Relation).values(
                    count=select(func.count())
                    .select_from(RelationEvidence)
                    .where(RelationEvidence.relation_id == Relation.id)
                    .scalar_subquery()
                )
            )
            conn.execute(delete(Relation).where(Relation.count <= 0))
            self._delete_unmentioned_entities(conn)
            if self.dialect == "sqlite":
                conn.execute(text("DELETE FROM chunks_fts WHERE chunk_id NOT IN (SELECT id FROM chunks)"))
                conn.execute(
                    text(
                        "INSERT INTO chunks_fts (chunk_id, namespace, text) SELECT id, namespace, text FROM chunks "
                        "WHERE id NOT IN (SELECT chunk_id FROM chunks_fts)"
                    )
                )

    # -- analysis (memory_graph.analysis) ----------------------------------------------------

    def alias_rows(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every live alias (of one namespace or all), as dicts: ``entity_id``, ``alias``, ``alias_key``, ``count``."""
        query = (
            select(
                EntityAlias.entity_id,
                EntityAlias.namespace,
                EntityAlias.alias,
                EntityAlias.alias_key,
                EntityAlias.count,
            )
            .where(EntityAlias.count > 0)
            .order_by(EntityAlias.namespace, EntityAlias.entity_id, EntityAlias.count.desc(), EntityAlias.alias)
        )
        if namespace is not None:
            query = query.where(EntityAlias.namespace == namespace)
        with self._read("reading aliases") as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


# -- helpers -----------------------------------------------------------------------------------

_TERM = re.compile(r"\w+", re.UNICODE)


def keyword_terms(query: str, *, max_terms: int = 32) -> list[str]:
    """The query's words for keyword search: lower-cased, stop words dropped, deduplicated."""
    from spacy.lang.en.stop_words import STOP_WORDS

    words = [w.lower() for w in _TERM.findall(query)]
    terms = [w for w in words if w not in STOP_WORDS and (len(w) > 1 or w.isdigit())]
    return list(dict.fromkeys(terms or words))[:max_terms]


SQLITE_MMAP_BYTES = 1 << 30  # of an SQLite store, read through a memory map (the rest with read())


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout and memory-mapped reads.

    Raises:
        ConfigError: the URL is malformed or names a driver that is not installed.
    """
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Pages read through a memory map rather than a read() call each: a search reads a few
    # hundred scattered rows (its hits' entities and relations). The map is address space, not
    # memory: the pages are the OS's file cache. HotpotQA store (116 MB), k=20: search p50/p95
    # 27.4/38.7 against 29.0/40.7 ms, interleaved.
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


def _bind_time(value: datetime, dialect: str) -> Any:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    # Raw SQL bypasses the Timestamp type: match how SQLite stores it (naive UTC text).
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else value


def _entity_dict(row: Any) -> dict[str, Any]:
    e = row._mapping
    return {
        "id": e["id"],
        "namespace": e["namespace"],
        "label": e["label"],
        "key": e["key"],
        "name": e["name"],
        "attributes": dict(e["attributes"] or {}),
        "mention_count": e["mention_count"],
        "first_seen": e["first_seen"],
        "last_seen": e["last_seen"],
    }


def _same_name(a: str, b: str) -> bool:
    """Each word of the shorter key is a prefix of a word of the longer, in order."""
    short, long = sorted((a.split(), b.split()), key=len)
    words = iter(long)
    return bool(short) and all(any(w.startswith(s) for w in words) for s in short)


class MemberRow(NamedTuple):
    id: int
    merged_into: int | None
    namespace: str
    key: str
    mention_count: int


class MemberRows(NamedTuple):
    """The rows one (canonical) entity stands for: those of its name, and those merged into them."""

    same_name: list[MemberRow]
    merged: list[MemberRow]


def group_members(entity_ids: Sequence[int], rows: Mapping[int, MemberRows]) -> tuple[dict[int, int], dict[int, int]]:
    """:meth:`GraphStore.entity_members` of ``entity_ids`` from their rows (a mapping that holds
    at least theirs). A row of the same name as two of them goes to the first."""
    ids = list(dict.fromkeys(entity_ids))
    members = {i: i for i in ids}
    by_name: dict[tuple[str, str], int] = {}
    for i in ids:
        for r in rows[i].same_name:
            if r.id == i:
                by_name.setdefault((r.namespace, r.key), i)
    own_count: dict[int, int] = {}
    for i in ids:
        for r in rows[i].same_name:
            own_count[r.id] = r.mention_count
            members.setdefault(r.id, by_name[(r.namespace, r.key)])
    for i in ids:
        for r in rows[i].merged:
            own_count[r.id] = r.mention_count
            members.setdefault(r.id, members[r.merged_into])  # type: ignore[index]
    counts: dict[int, int] = defaultdict(int)
    for member, given in members.items():
        if member in own_count:
            counts[given] += own_count[member]
    return members, dict(counts)


def _restrict(members: Mapping[int, int], entity_ids: Iterable[int]) -> dict[int, int]:
    """The part of a members map from :meth:`GraphStore.entity_members` that stands for ``entity_ids``."""
    wanted = set(entity_ids)
    return {member: given for member, given in members.items() if given in wanted}


# The latest memory of ``:ns`` observed from ``:lo`` to ``:t``, other than the document ``:doc``:
# the turn before one observed at ``:t``, if it is a turn.
_MEMORY_BEFORE = (
    select(Document.id, Document.meta.label("meta"))
    .where(
        Document.namespace == bindparam("ns"),
        Document.observed_at >= bindparam("lo"),
        Document.observed_at <= bindparam("t"),
        Document.deleted_at.is_(None),
        Document.id != bindparam("doc"),
    )
    .order_by(Document.observed_at.desc(), Document.created_at.desc())
    .limit(1)
)
# ``(label, key, name)`` of the canonical entities the last chunk of the document ``:doc`` mentions.
_LAST_CHUNK_ENTITIES = (
    select(_CANON.c.label, _CANON.c.key, _CANON.c.name)
    .join(Entity, _CANON.c.id == func.coalesce(Entity.merged_into, Entity.id))
    .join(Mention, Mention.entity_id == Entity.id)
    .where(
        Mention.chunk_id
        == select(Chunk.id)
        .where(Chunk.document_id == bindparam("doc"))
        .order_by(Chunk.ordinal.desc())
        .limit(1)
        .scalar_subquery()
    )
    .order_by(func.min(Mention.start))
    .group_by(_CANON.c.label, _CANON.c.key, _CANON.c.name)
)


@cache
def _turns_after(windows: int, since: bool, until: bool) -> Any:
    """The memories of a namespace observed inside any of ``windows`` time windows (``t{i}`` <=
    observed_at <= ``u{i}``), and after ``since`` / before ``until`` when those are bound, each as
    its first chunk, in time order and then in the order written; a memory inside two windows
    comes twice. One index range scan of ``(namespace, observed_at)`` per window: as one OR of
    the windows, SQLite read every memory of the namespace (55 ms for 50,000 turns, against
    well under 1 ms). Built once per shape."""

    def window(i: int) -> Any:
        query = (
            select(Chunk.id, Document.observed_at, Document.created_at, Document.meta.label("meta"))
            .join(Chunk, Chunk.document_id == Document.id)
            .where(
                Document.namespace == bindparam("ns"),
                Document.observed_at >= bindparam(f"t{i}"),
                Document.observed_at <= bindparam(f"u{i}"),
                Document.deleted_at.is_(None),
                Chunk.ordinal == 0,
            )
        )
        if since:
            query = query.where(Document.observed_at >= bindparam("since"))
        if until:
            query = query.where(Document.observed_at < bindparam("until"))
        return query

    turns = union_all(*(window(i) for i in range(windows))).subquery()
    return select(turns).order_by(turns.c.observed_at, turns.c.created_at, turns.c.id)


def _batches(items: Sequence[Any], size: int = _BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
