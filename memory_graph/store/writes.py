"""Writes: documents, chunks and their graph in one transaction; deletes that keep counts true.

A write is two steps. :func:`graph_rows` is pure: it turns the extractions of a batch into the
rows to store, one per entity, alias and relation key with their counts summed, and every
mention and piece of evidence. The upserts then store those rows, sorted, so that concurrent
writers lock rows in the same order (no deadlocks on PostgreSQL); a repeated write adds to the
counts of the rows it finds instead of adding rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, select, tuple_, update
from sqlalchemy.engine import Connection

from memory_graph.records import Extraction
from memory_graph.schema import (
    Chunk,
    Document,
    Entity,
    EntityAlias,
    EntityMerge,
    Mention,
    ReingestBatch,
    ReingestJob,
    Relation,
    RelationEvidence,
)
from memory_graph.store.engine import Dialect, batches, utcnow
from memory_graph.store.rows import DocumentRow
from memory_graph.vocabulary import normalize_key


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


EntityKey = tuple[str, str, str]  # namespace, label, key
RelationKey = tuple[str, EntityKey, str, EntityKey]  # namespace, source, predicate, target


@dataclass
class GraphRows:
    """The graph rows of a batch of documents, their entities by key (ids come from the upsert)."""

    entities: dict[EntityKey, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[tuple[EntityKey, str], dict[str, Any]] = field(default_factory=dict)
    mentions: list[tuple[EntityKey, dict[str, Any]]] = field(default_factory=list)
    relations: dict[RelationKey, dict[str, Any]] = field(default_factory=dict)
    evidence: list[tuple[RelationKey, dict[str, Any]]] = field(default_factory=list)


def graph_rows(docs: Sequence[DocumentWrite]) -> GraphRows:
    """The rows that store the graph of ``docs``: entities, aliases and relations one per key,
    with counts summed and first/last seen spanning their documents; mentions and evidence one
    per occurrence, at document offsets. Pure: reads nothing, writes nothing."""
    out = GraphRows()
    for d in docs:
        for c in d.chunks:
            keys: list[EntityKey] = []
            for e in c.extraction.entities:
                ekey = (d.namespace, e.label, e.key)
                keys.append(ekey)
                row = out.entities.get(ekey)
                if row is None:
                    row = out.entities[ekey] = {
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
                    alias = out.aliases.setdefault((ekey, akey), {"alias": e.text[:255], "alias_key": akey, "count": 0})
                    alias["count"] += 1
                out.mentions.append(
                    (
                        ekey,
                        {
                            "chunk_id": c.id,
                            "namespace": d.namespace,
                            "text": e.text[:255],
                            "start": c.start + e.start,
                            "end": c.start + e.end,
                            "sent_start": c.start + e.sent_start,
                            "sent_end": c.start + e.sent_end,
                        },
                    )
                )
            for r in c.extraction.relations:
                rkey = (d.namespace, keys[r.source], r.predicate[:255], keys[r.target])
                rel = out.relations.get(rkey)
                if rel is None:
                    rel = out.relations[rkey] = {
                        "namespace": d.namespace,
                        "predicate": rkey[2],
                        "count": 0,
                        "confidence": 0.0,
                        "extractor_version": c.extraction.extractor_version,
                        "first_seen": d.observed_at,
                        "last_seen": d.observed_at,
                        "state": r.state,
                    }
                rel["count"] += 1
                rel["confidence"] = max(rel["confidence"], r.confidence)
                rel["first_seen"] = min(rel["first_seen"], d.observed_at)
                rel["last_seen"] = max(rel["last_seen"], d.observed_at)
                out.evidence.append(
                    (
                        rkey,
                        {
                            "chunk_id": c.id,
                            "namespace": d.namespace,
                            "sentence": r.sentence,
                            "start": c.start + r.sent_start,
                            "end": c.start + r.sent_end,
                            "confidence": r.confidence,
                            "role": r.role,
                            "modality": r.modality,
                            "valid_from": r.valid_from,
                            "valid_until": r.valid_until,
                            "correction": r.correction,
                            "surface": r.surface[:255] or None,
                            "source_start": c.start + r.source_span[0] if r.source_span else None,
                            "source_end": c.start + r.source_span[1] if r.source_span else None,
                            "target_start": c.start + r.target_span[0] if r.target_span else None,
                            "target_end": c.start + r.target_span[1] if r.target_span else None,
                        },
                    )
                )
    return out


def write_documents(conn: Connection, dialect: Dialect, docs: Sequence[DocumentWrite]) -> list[WriteResult]:
    """Store documents, their chunks and their graph (see :meth:`GraphStore.write_documents`)."""
    existing = _existing_documents(conn, docs)
    results: list[WriteResult] = []
    to_write: list[DocumentWrite] = []
    removed: dict[str, list[str]] = {}
    for doc in docs:
        found = existing.get((doc.namespace, doc.doc_key))
        if found is not None and found.content_hash == doc.content_hash and not found.deleted:
            results.append(WriteResult(found.id, False, found.chunk_ids, []))
            continue
        if found is not None:
            removed[doc.id] = found.chunk_ids
            remove_chunks(conn, dialect, found.chunk_ids)
            doc.id = found.id
        to_write.append(doc)
        results.append(WriteResult(doc.id, True, [c.id for c in doc.chunks], removed.get(doc.id, [])))
    # Two documents of one batch with the same key: the later one wins, as with add().
    unique = list({(d.namespace, d.doc_key): d for d in to_write}.values())
    if unique:
        _upsert_documents(conn, dialect, unique, existing)
        _insert_chunks(conn, dialect, unique)
        _write_graph(conn, dialect, graph_rows(unique))
    return results


@dataclass
class _Stored:
    id: str
    content_hash: str
    deleted: bool
    chunk_ids: list[str] = field(default_factory=list)


def _existing_documents(conn: Connection, docs: Sequence[DocumentWrite]) -> dict[tuple[str, str], _Stored]:
    keys = list({(d.namespace, d.doc_key) for d in docs})
    found: dict[tuple[str, str], _Stored] = {}
    for batch in batches(keys):
        rows = conn.execute(
            select(Document.id, Document.namespace, Document.doc_key, Document.content_hash, Document.deleted_at).where(
                tuple_(Document.namespace, Document.doc_key).in_(batch)
            )
        ).all()
        for row in rows:
            found[(row.namespace, row.doc_key)] = _Stored(row.id, row.content_hash, row.deleted_at is not None)
    if found:
        by_id = {v.id: v for v in found.values()}
        for ids in batches(list(by_id)):
            for chunk in conn.execute(
                select(Chunk.id, Chunk.document_id).where(Chunk.document_id.in_(ids)).order_by(Chunk.ordinal)
            ):
                by_id[chunk.document_id].chunk_ids.append(chunk.id)
    return found


def _upsert_documents(
    conn: Connection, dialect: Dialect, docs: list[DocumentWrite], existing: dict[tuple[str, str], _Stored]
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
    for batch in batches(rows):
        conn.execute(dialect.insert(Document), batch)
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


def _insert_chunks(conn: Connection, dialect: Dialect, docs: list[DocumentWrite]) -> None:
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
    for batch in batches(rows):
        conn.execute(dialect.insert(Chunk), batch)
        dialect.index_text(conn, batch)


def _write_graph(conn: Connection, dialect: Dialect, rows: GraphRows) -> None:
    entity_ids = _upsert_entities(conn, dialect, list(rows.entities.values()))

    alias_rows = [
        {"entity_id": entity_ids[ekey], "namespace": ekey[0], **alias} for (ekey, _), alias in rows.aliases.items()
    ]
    stmt = dialect.insert(EntityAlias)
    stmt = stmt.on_conflict_do_update(
        index_elements=["entity_id", "alias_key"], set_={"count": EntityAlias.count + stmt.excluded.count}
    )
    for batch in batches(sorted(alias_rows, key=lambda r: (r["entity_id"], r["alias_key"]))):
        conn.execute(stmt, batch)

    mention_rows = [{"entity_id": entity_ids[ekey], **row} for ekey, row in rows.mentions]
    stmt = dialect.insert(Mention).on_conflict_do_nothing(index_elements=["chunk_id", "entity_id", "start"])
    for batch in batches(mention_rows):
        conn.execute(stmt, batch)

    relation_rows = [
        {**row, "source_id": entity_ids[source], "target_id": entity_ids[target]}
        for (_, source, _, target), row in rows.relations.items()
    ]
    relation_ids = _upsert_relations(conn, dialect, relation_rows)
    evidence_rows = [
        {"relation_id": relation_ids[(ns, entity_ids[source], predicate, entity_ids[target])], **row}
        for (ns, source, predicate, target), row in rows.evidence
    ]
    stmt = dialect.insert(RelationEvidence).on_conflict_do_nothing(index_elements=["relation_id", "chunk_id", "start"])
    for batch in batches(evidence_rows):
        conn.execute(stmt, batch)


def _upsert_entities(conn: Connection, dialect: Dialect, rows: list[dict[str, Any]]) -> dict[EntityKey, int]:
    stmt = dialect.insert(Entity)
    stmt = stmt.on_conflict_do_update(
        index_elements=["namespace", "label", "key"],
        set_={
            "mention_count": Entity.mention_count + stmt.excluded.mention_count,
            "first_seen": dialect.least(Entity.first_seen, stmt.excluded.first_seen),
            "last_seen": dialect.greatest(Entity.last_seen, stmt.excluded.last_seen),
        },
    ).returning(Entity.id, Entity.namespace, Entity.label, Entity.key)
    ids: dict[EntityKey, int] = {}
    # Sorted, so concurrent writers lock rows in the same order (no deadlocks on PostgreSQL).
    for batch in batches(sorted(rows, key=lambda r: (r["namespace"], r["label"], r["key"]))):
        for row in conn.execute(stmt.values(batch)):
            ids[(row.namespace, row.label, row.key)] = row.id
    return ids


def _upsert_relations(
    conn: Connection, dialect: Dialect, rows: list[dict[str, Any]]
) -> dict[tuple[str, int, str, int], int]:
    stmt = dialect.insert(Relation)
    stmt = stmt.on_conflict_do_update(
        index_elements=["namespace", "source_id", "predicate", "target_id"],
        set_={
            "count": Relation.count + stmt.excluded.count,
            "confidence": dialect.greatest(Relation.confidence, stmt.excluded.confidence),
            "last_seen": dialect.greatest(Relation.last_seen, stmt.excluded.last_seen),
        },
    ).returning(Relation.id, Relation.namespace, Relation.source_id, Relation.predicate, Relation.target_id)
    ids: dict[tuple[str, int, str, int], int] = {}
    ordered = sorted(rows, key=lambda r: (r["namespace"], r["source_id"], r["predicate"], r["target_id"]))
    for batch in batches(ordered):
        for row in conn.execute(stmt.values(batch)):
            ids[(row.namespace, row.source_id, row.predicate, row.target_id)] = row.id
    return ids


def remove_chunks(conn: Connection, dialect: Dialect, chunk_ids: Sequence[str]) -> None:
    """Delete chunks and everything derived from them, keeping graph counts true."""
    if not chunk_ids:
        return
    entities: set[int] = set()  # whose mentions, and relations whose evidence, are counted down
    relations: set[int] = set()
    for batch in batches(chunk_ids):
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
                update(Relation).where(Relation.id == bindparam("rid")).values(count=Relation.count - bindparam("n")),
                [{"rid": rid, "n": n} for rid, n in evidence_counts],
            )
        dialect.unindex_text(conn, batch)
        conn.execute(delete(Chunk).where(Chunk.id.in_(batch)))
    # Whatever lost its last evidence goes: relations first, then entities nobody mentions. Only
    # what this removal counted down can have (the counts were true before it), so only that is
    # looked at: a scan of every relation and entity grows with the store.
    for relation_ids in batches(sorted(relations)):
        gone = and_(Relation.id.in_(relation_ids), Relation.count <= 0)
        conn.execute(delete(RelationEvidence).where(RelationEvidence.relation_id.in_(select(Relation.id).where(gone))))
        conn.execute(delete(Relation).where(gone))
    for entity_ids in batches(sorted(entities)):
        conn.execute(delete(EntityAlias).where(EntityAlias.entity_id.in_(entity_ids), EntityAlias.count <= 0))
        delete_unmentioned_entities(conn, among=entity_ids)


def delete_unmentioned_entities(conn: Connection, *, among: Sequence[int] | None = None) -> int:
    """Delete the entities nobody mentions (those of ``among`` only, when given), with their
    aliases and relations; returns how many."""
    unmentioned = Entity.mention_count <= 0 if among is None else and_(Entity.id.in_(among), Entity.mention_count <= 0)
    orphans = select(Entity.id).where(unmentioned)
    conn.execute(delete(EntityAlias).where(EntityAlias.entity_id.in_(orphans)))
    doomed = select(Relation.id).where(Relation.source_id.in_(orphans) | Relation.target_id.in_(orphans))
    conn.execute(delete(RelationEvidence).where(RelationEvidence.relation_id.in_(doomed)))
    conn.execute(delete(Relation).where(Relation.source_id.in_(orphans) | Relation.target_id.in_(orphans)))
    return conn.execute(delete(Entity).where(unmentioned)).rowcount or 0


def mark_indexed(conn: Connection, chunk_ids: Sequence[str]) -> None:
    """Record that the vectors of these chunks are confirmed written."""
    now = utcnow()
    for batch in batches(list(chunk_ids)):
        conn.execute(update(Chunk).where(Chunk.id.in_(batch)).values(indexed_at=now))


def delete_document(conn: Connection, dialect: Dialect, document_id: str) -> DocumentRow | None:
    """Delete a document's chunks and graph contributions, keeping a tombstone row; the deleted
    document (with the chunk ids to remove from the vector index), or ``None``."""
    row = conn.execute(
        select(Document.id, Document.namespace, Document.external_id, Document.deleted_at).where(
            Document.id == document_id
        )
    ).first()
    if row is None or row.deleted_at is not None:
        return None
    chunk_ids = list(conn.execute(select(Chunk.id).where(Chunk.document_id == document_id)).scalars())
    remove_chunks(conn, dialect, chunk_ids)
    conn.execute(update(Document).where(Document.id == document_id).values(deleted_at=utcnow(), text=""))
    return DocumentRow(row.id, row.namespace, row.external_id, chunk_ids, True)


def forget_namespace(conn: Connection, dialect: Dialect, namespace: str) -> tuple[dict[str, int], list[str]]:
    """Delete every row of ``namespace`` from every table (documents with their tombstones,
    chunks and their keyword index, the graph, merges, re-ingest jobs): how many rows of each,
    and the ids of the chunks deleted (whose vectors go next). Dependants go first, so no
    foreign key is ever left dangling, whatever the dialect's cascades."""
    chunk_ids = list(conn.execute(select(Chunk.id).where(Chunk.namespace == namespace)).scalars())
    counts: dict[str, int] = {}

    def gone(name: str, statement: Any) -> None:
        counts[name] = conn.execute(statement).rowcount or 0

    gone("evidence", delete(RelationEvidence).where(RelationEvidence.namespace == namespace))
    gone("mentions", delete(Mention).where(Mention.namespace == namespace))
    gone("relations", delete(Relation).where(Relation.namespace == namespace))
    gone("merges", delete(EntityMerge).where(EntityMerge.namespace == namespace))
    gone("aliases", delete(EntityAlias).where(EntityAlias.namespace == namespace))
    # An entity's merged_into points within its namespace (merges never cross one).
    conn.execute(update(Entity).where(Entity.namespace == namespace).values(merged_into=None))
    gone("entities", delete(Entity).where(Entity.namespace == namespace))
    dialect.unindex_namespace(conn, namespace)
    gone("chunks", delete(Chunk).where(Chunk.namespace == namespace))
    gone("documents", delete(Document).where(Document.namespace == namespace))
    jobs = select(ReingestJob.id).where(ReingestJob.namespace == namespace)
    conn.execute(delete(ReingestBatch).where(ReingestBatch.job_id.in_(jobs)))
    gone("reingest_jobs", delete(ReingestJob).where(ReingestJob.namespace == namespace))
    return counts, chunk_ids
