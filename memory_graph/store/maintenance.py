"""Maintenance of the relational store: problems and their repair, counts, and whole-table reads
for analysis and export. None of these is on the query path; each reads whole tables."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection

from memory_graph.schema import (
    Chunk,
    Document,
    Entity,
    EntityAlias,
    Mention,
    Relation,
    RelationEvidence,
    VectorCollection,
)
from memory_graph.store.engine import Dialect, batches, utcnow
from memory_graph.store.reads import FIRST_EVIDENCE, SURFACE_COLUMNS, surface_fields
from memory_graph.store.rows import AliasRow, EntityRow, GraphProblems, MentionRow, RelationRow, RowCounts
from memory_graph.store.writes import delete_unmentioned_entities


def graph_problems(conn: Connection) -> GraphProblems:
    """Counts of dangling rows and counters that disagree with the rows they count."""
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
    return GraphProblems(
        dangling_mentions=int(dangling_mentions),
        dangling_relations=int(dangling_relations),
        orphan_entities=int(orphan_entities),
        count_mismatches=int(count_mismatches),
    )


def repair_graph(conn: Connection, dialect: Dialect) -> None:
    """Remove dangling rows and recompute counters from the rows they count."""
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
    delete_unmentioned_entities(conn)
    dialect.reindex_text(conn)


def row_counts(conn: Connection, namespace: str | None = None) -> RowCounts:
    """Row counts (live documents only), for one namespace or all."""
    counts: dict[str, int] = {}
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
    return RowCounts(**counts)


def entity_rows(conn: Connection, namespace: str | None = None) -> list[EntityRow]:
    """Every entity (of one namespace or all)."""
    query = select(Entity).order_by(Entity.namespace, Entity.id)
    if namespace is not None:
        query = query.where(Entity.namespace == namespace)
    return [EntityRow.of(e) for e in conn.execute(query)]


RELATION_ROW_COLUMNS = ("id", "namespace", "source_id", "predicate", "target_id", "count", "confidence",
                        "first_seen", "last_seen", "evidence", "state")  # fmt: skip


def relation_rows(conn: Connection, namespace: str | None = None) -> list[RelationRow]:
    """Every relation with its first evidence: the sentence and what the relation is in it."""
    query = (
        select(
            Relation.id,
            Relation.namespace,
            Relation.source_id,
            Relation.predicate,
            Relation.target_id,
            Relation.count,
            Relation.confidence,
            Relation.first_seen,
            Relation.last_seen,
            RelationEvidence.sentence.label("evidence"),
            Relation.state,
            *SURFACE_COLUMNS,
        )
        .outerjoin(RelationEvidence, RelationEvidence.id == FIRST_EVIDENCE)
        .order_by(Relation.namespace, Relation.id)
    )
    if namespace is not None:
        query = query.where(Relation.namespace == namespace)
    rows = []
    for r in conn.execute(query):
        m = r._mapping
        surface, source_phrase, target_phrase = surface_fields(r, m["evidence"])
        rows.append(
            RelationRow(
                **{k: m[k] for k in RELATION_ROW_COLUMNS},
                surface=surface,
                source_phrase=source_phrase,
                target_phrase=target_phrase,
            )
        )
    return rows


def mention_rows(conn: Connection, namespace: str | None = None) -> list[MentionRow]:
    """Every mention with its document and observation time."""
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
    return [MentionRow(**r._mapping) for r in conn.execute(query)]


def alias_rows(conn: Connection, namespace: str | None = None) -> list[AliasRow]:
    """Every live alias (of one namespace or all)."""
    query = (
        select(
            EntityAlias.entity_id, EntityAlias.namespace, EntityAlias.alias, EntityAlias.alias_key, EntityAlias.count
        )
        .where(EntityAlias.count > 0)
        .order_by(EntityAlias.namespace, EntityAlias.entity_id, EntityAlias.count.desc(), EntityAlias.alias)
    )
    if namespace is not None:
        query = query.where(EntityAlias.namespace == namespace)
    return [AliasRow(**r._mapping) for r in conn.execute(query)]


# -- the vector collections of the namespaces (vector_store.CollectionRegistry) ------------------


def vector_collections(conn: Connection, index: str) -> dict[str, str]:
    rows = conn.execute(
        select(VectorCollection.namespace, VectorCollection.collection).where(VectorCollection.vector_index == index)
    )
    return {ns: name for ns, name in rows}


def register_vector_collection(conn: Connection, dialect: Dialect, index: str, namespace: str, collection: str) -> None:
    conn.execute(
        dialect.insert(VectorCollection)
        .values(vector_index=index, namespace=namespace, collection=collection, created_at=utcnow())
        .on_conflict_do_nothing()
    )


def unregister_vector_collection(conn: Connection, index: str, namespace: str) -> None:
    conn.execute(
        delete(VectorCollection).where(VectorCollection.vector_index == index, VectorCollection.namespace == namespace)
    )


def chunk_namespaces(conn: Connection, chunk_ids: Sequence[str]) -> dict[str, str]:
    """chunk id → namespace, for those of ``chunk_ids`` that are stored."""
    found: dict[str, str] = {}
    for part in batches(chunk_ids):
        found.update({cid: ns for cid, ns in conn.execute(select(Chunk.id, Chunk.namespace).where(Chunk.id.in_(part)))})
    return found


def chunk_ids_with_namespace_after(conn: Connection, after: str, limit: int) -> list[tuple[str, str]]:
    """``(chunk id, namespace)`` of the next ``limit`` chunks by id after ``after``."""
    rows = conn.execute(select(Chunk.id, Chunk.namespace).where(Chunk.id > after).order_by(Chunk.id).limit(limit))
    return [(cid, ns) for cid, ns in rows]
