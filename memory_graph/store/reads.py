"""Reads that the write path, the manager and search share: documents, chunks and what of the
graph they hold, entities by name, the rows an entity stands for, and the turn before a memory.

Every read is batched (one statement per :data:`~memory_graph.store.engine.BATCH` ids), never
one query per row. The statements of the search path are built once, at import: building one
costs more than running it on a small database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, literal, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import BindParameter

from memory_graph.facts import ASSERTED, HOLD, Statement
from memory_graph.records import EntityRef, RelationRef
from memory_graph.schema import Chunk, Document, Entity, EntityAlias, Mention, Relation, RelationEvidence
from memory_graph.store.engine import batches
from memory_graph.store.rows import (
    ChunkRow,
    DocumentRow,
    EntityDetails,
    EntityMention,
    EntityRow,
    MemberRow,
    MemberRows,
    phrase_in,
)
from memory_graph.vocabulary import COOCCURRENCE, speaker_of

# Aliases of the entities table, made once: an alias copies every column, which costs more than
# running a small query when it is done per call on the search path.
CANON = Entity.__table__.alias("canon")
_SOURCE_RAW, _TARGET_RAW = Entity.__table__.alias("sr"), Entity.__table__.alias("tr")
_SOURCE, _TARGET = Entity.__table__.alias("s"), Entity.__table__.alias("t")
_GIVEN = Entity.__table__.alias("given")
#: The canonical entity a row stands for, through any merge.
CANONICAL_ID = func.coalesce(Entity.merged_into, Entity.id)

IDS: BindParameter[Any] = bindparam("ids", expanding=True)
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
    .where(Chunk.id.in_(IDS))
)
# The entities the chunks ``:ids`` mention, each row its own and the canonical one it stands for
# (through any merge), in the order of their first mention in each chunk.
_CHUNK_ENTITIES = (
    select(
        Mention.chunk_id,
        Mention.entity_id,
        CANON.c.id,
        CANON.c.name,
        CANON.c.label,
        func.min(Mention.start).label("pos"),
    )
    .join(Entity, Entity.id == Mention.entity_id)
    .join(CANON, CANON.c.id == CANONICAL_ID)
    .where(Mention.chunk_id.in_(IDS))
    .group_by(Mention.chunk_id, Mention.entity_id, CANON.c.id, CANON.c.name, CANON.c.label)
    .order_by(Mention.chunk_id, "pos")
)
# The relation's words and the document offsets of its ends, as a piece of evidence keeps them.
SURFACE_COLUMNS = (
    RelationEvidence.start.label("sentence_start"),
    RelationEvidence.surface,
    RelationEvidence.source_start,
    RelationEvidence.source_end,
    RelationEvidence.target_start,
    RelationEvidence.target_end,
)
# A relation's first piece of evidence (the one its rows show), for a query that joins it.
_EVIDENCE = aliased(RelationEvidence)
FIRST_EVIDENCE = (
    select(func.min(_EVIDENCE.id)).where(_EVIDENCE.relation_id == Relation.id).correlate(Relation).scalar_subquery()
)


def surface_fields(row: Any, sentence: str | None) -> tuple[str | None, str | None, str | None]:
    """``(surface, source phrase, target phrase)`` of an evidence row with :data:`SURFACE_COLUMNS`."""
    return (
        row.surface,
        phrase_in(sentence, row.sentence_start, row.source_start, row.source_end),
        phrase_in(sentence, row.sentence_start, row.target_start, row.target_end),
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
        Relation.state,
        *SURFACE_COLUMNS,
    )
    .join(Relation, Relation.id == RelationEvidence.relation_id)
    .where(RelationEvidence.chunk_id.in_(IDS))
    .order_by(RelationEvidence.chunk_id, RelationEvidence.start, Relation.confidence.desc(), Relation.id)
)
# Entity rows by id with the canonical entity each stands for.
_CANONICAL_OF = (
    select(Entity.id, CANON.c.id, CANON.c.name, CANON.c.label)
    .join(CANON, CANON.c.id == CANONICAL_ID)
    .where(Entity.id.in_(IDS))
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
    .where(_GIVEN.c.id.in_(IDS))
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
    select(CANON.c.label, CANON.c.key, CANON.c.name)
    .join(Entity, CANON.c.id == CANONICAL_ID)
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
    .group_by(CANON.c.label, CANON.c.key, CANON.c.name)
)


# -- documents and chunks ------------------------------------------------------------------------


def document(conn: Connection, document_id: str) -> DocumentRow | None:
    """A document (live or a tombstone) with its chunk ids in order, or ``None``."""
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


def live_documents_by_key(conn: Connection, namespace: str, doc_keys: Sequence[str], column: Any) -> dict[str, Any]:
    """``doc_key -> column`` for the live documents among ``doc_keys``."""
    found: dict[str, Any] = {}
    for batch in batches(list(dict.fromkeys(doc_keys))):
        rows = conn.execute(
            select(Document.doc_key, column).where(
                Document.namespace == namespace, Document.doc_key.in_(batch), Document.deleted_at.is_(None)
            )
        )
        found.update({r[0]: r[1] for r in rows})
    return found


def chunks(conn: Connection, chunk_ids: Sequence[str]) -> dict[str, ChunkRow]:
    """Chunk rows joined with their document, by id."""
    out: dict[str, ChunkRow] = {}
    for batch in batches(list(dict.fromkeys(chunk_ids))):
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


def unindexed_chunk_ids(conn: Connection, chunk_ids: Sequence[str] | None, limit: int | None) -> list[str]:
    """Ids of the chunks whose vectors are not confirmed (all, or those among ``chunk_ids``)."""
    query = select(Chunk.id).where(Chunk.indexed_at.is_(None)).order_by(Chunk.id)
    if chunk_ids is not None:
        query = query.where(Chunk.id.in_(list(chunk_ids)))
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query).scalars())


def chunk_ids_after(conn: Connection, last: str, limit: int) -> list[str]:
    """The next ``limit`` chunk ids after ``last``, in id order (a keyset page)."""
    return list(conn.execute(select(Chunk.id).where(Chunk.id > last).order_by(Chunk.id).limit(limit)).scalars())


def existing_chunk_ids(conn: Connection, chunk_ids: Sequence[str]) -> set[str]:
    """Those of ``chunk_ids`` that are stored."""
    found: set[str] = set()
    for batch in batches(list(chunk_ids)):
        found.update(conn.execute(select(Chunk.id).where(Chunk.id.in_(batch))).scalars())
    return found


def chunk_context(
    conn: Connection, chunk_ids: Sequence[str]
) -> tuple[dict[str, list[EntityRef]], dict[str, list[RelationRef]]]:
    """What each chunk holds of the graph (see :meth:`GraphStore.chunk_context`)."""
    entities: dict[str, list[EntityRef]] = defaultdict(list)
    relations: dict[str, list[RelationRef]] = defaultdict(list)
    if not chunk_ids:
        return entities, relations
    refs: dict[int, EntityRef] = {}  # one per canonical entity: most recur across the chunks
    of_row: dict[int, EntityRef] = {}  # entity row -> its canonical entity
    listed: set[tuple[str, int]] = set()
    evidence: list[Any] = []
    for batch in batches(list(dict.fromkeys(chunk_ids))):
        for chunk_id, row_id, eid, name, label, _ in conn.execute(_CHUNK_ENTITIES, {"ids": batch}).all():
            if (ref := refs.get(eid)) is None:
                ref = refs[eid] = EntityRef(eid, name, label)
            of_row[row_id] = ref
            if (chunk_id, eid) not in listed:  # merged rows: their canonical entity once
                listed.add((chunk_id, eid))
                entities[chunk_id].append(ref)
        evidence += conn.execute(_CHUNK_RELATIONS, {"ids": batch}).all()
    unread = list({end for row in evidence for end in (row.source_id, row.target_id)} - of_row.keys())
    for batch in batches(unread):
        for row_id, eid, name, label in conn.execute(_CANONICAL_OF, {"ids": batch}).all():
            of_row[row_id] = refs.setdefault(eid, EntityRef(eid, name, label))
    seen: set[tuple[str, int]] = set()
    for row in evidence:
        if (row.chunk_id, row.id) not in seen:  # one relation, two sentences of the chunk: the first
            seen.add((row.chunk_id, row.id))
            surface, source_phrase, target_phrase = surface_fields(row, row.sentence)
            relations[row.chunk_id].append(
                RelationRef(
                    row.id,
                    of_row[row.source_id],
                    row.predicate,
                    of_row[row.target_id],
                    row.sentence,
                    float(row.confidence),
                    row.state,
                    surface=surface,
                    source_phrase=source_phrase,
                    target_phrase=target_phrase,
                )
            )
    return entities, relations


# -- entities ---------------------------------------------------------------------------------


def find_entities(conn: Connection, namespace: str, keys: Sequence[str]) -> list[EntityRow]:
    """Canonical entities whose key or a live alias key is among ``keys``, most mentioned first."""
    by_key = select(Entity.id).where(Entity.namespace == namespace, Entity.key.in_(keys))
    by_alias = select(EntityAlias.entity_id).where(
        EntityAlias.namespace == namespace, EntityAlias.alias_key.in_(keys), EntityAlias.count > 0
    )
    matched = select(CANONICAL_ID).where(Entity.id.in_(by_key.union(by_alias)))
    rows = conn.execute(select(Entity).where(Entity.id.in_(matched)).order_by(Entity.mention_count.desc(), Entity.id))
    return [EntityRow.of(e) for e in rows]


def member_rows(conn: Connection, entity_ids: Sequence[int]) -> dict[int, MemberRows]:
    """The rows each of the given (canonical) entities stands for, by given entity: its
    same-name siblings under another label (the NER calling one company ORG in one memory and
    LOC in the next) and the rows merged into those. :func:`group_members` resolves any subset."""
    ids = list(dict.fromkeys(entity_ids))
    out = {i: MemberRows([], []) for i in ids}
    for batch in batches(ids):
        for r in conn.execute(_MEMBERS, {"ids": batch}).all():
            row = MemberRow(r.id, r.merged_into, r.namespace, r.key, int(r.mention_count))
            (out[r.given].same_name if r.kind == 0 else out[r.given].merged).append(row)
    return out


def group_members(entity_ids: Sequence[int], rows: Mapping[int, MemberRows]) -> tuple[dict[int, int], dict[int, int]]:
    """The rows standing for ``entity_ids`` as ``entity id -> given id``, and each given entity's
    mentions summed over those rows (the stored counts, kept at every write and delete and checked
    by ``verify``), from their :func:`member_rows` (a mapping that holds at least theirs). A row
    of the same name as two of them goes to the first."""
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


def members(conn: Connection, entity_ids: Sequence[int]) -> dict[int, int]:
    """``entity id -> given id`` for the rows the given (canonical) entities stand for."""
    return group_members(entity_ids, member_rows(conn, entity_ids))[0]


def entity_details(conn: Connection, entity_id: int, *, max_relations: int, max_mentions: int) -> EntityDetails:
    """Aliases, relations (with evidence), mentions and mention totals of one entity and the rows
    that stand for it."""
    ids = list(members(conn, [entity_id]))
    # The counts of every row the entity stands for: "Maya" merged into "Maya Patel" keeps its own.
    totals = conn.execute(
        select(
            func.sum(Entity.mention_count).label("mentions"),
            func.min(Entity.first_seen).label("first_seen"),
            func.max(Entity.last_seen).label("last_seen"),
        ).where(Entity.id.in_(ids))
    ).one()
    aliases = list(
        dict.fromkeys(
            conn.execute(
                select(EntityAlias.alias)
                .where(EntityAlias.entity_id.in_(ids), EntityAlias.count > 0)
                .order_by(EntityAlias.count.desc(), EntityAlias.alias)
            ).scalars()
        )
    )
    relation_query = (
        select(
            Relation.id,
            Relation.predicate,
            Relation.confidence,
            RelationEvidence.sentence.label("evidence"),
            *SURFACE_COLUMNS,
            Relation.state,
            _SOURCE.c.id.label("sid"),
            _SOURCE.c.name.label("sname"),
            _SOURCE.c.label.label("slabel"),
            _TARGET.c.id.label("tid"),
            _TARGET.c.name.label("tname"),
            _TARGET.c.label.label("tlabel"),
        )
        .join(_SOURCE_RAW, _SOURCE_RAW.c.id == Relation.source_id)
        .join(_TARGET_RAW, _TARGET_RAW.c.id == Relation.target_id)
        .join(_SOURCE, _SOURCE.c.id == func.coalesce(_SOURCE_RAW.c.merged_into, _SOURCE_RAW.c.id))
        .join(_TARGET, _TARGET.c.id == func.coalesce(_TARGET_RAW.c.merged_into, _TARGET_RAW.c.id))
        .outerjoin(RelationEvidence, RelationEvidence.id == FIRST_EVIDENCE)
        .where(Relation.source_id.in_(ids) | Relation.target_id.in_(ids), Relation.predicate != COOCCURRENCE)
        .order_by(Relation.count.desc(), Relation.confidence.desc(), Relation.id)
        .limit(max_relations)
    )
    relations = []
    for r in conn.execute(relation_query):
        surface, source_phrase, target_phrase = surface_fields(r, r.evidence)
        relations.append(
            RelationRef(
                r.id,
                EntityRef(r.sid, r.sname, r.slabel),
                r.predicate,
                EntityRef(r.tid, r.tname, r.tlabel),
                r.evidence or "",
                float(r.confidence),
                r.state,
                surface=surface,
                source_phrase=source_phrase,
                target_phrase=target_phrase,
            )
        )
    mentions = [
        EntityMention(**r._mapping)
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
            .where(Mention.entity_id.in_(ids))
            .order_by(Document.observed_at, Mention.start)
            .limit(max_mentions)
        )
    ]
    return EntityDetails(
        aliases=aliases,
        relations=relations,
        mentions=mentions,
        mention_count=int(totals.mentions or 0),
        first_seen=totals.first_seen,
        last_seen=totals.last_seen,
    )


# -- states ----------------------------------------------------------------------------------

_TARGET_ENTITY = Entity.__table__.alias("value")
_SUBJECT_ENTITY = Entity.__table__.alias("subject")
_STATEMENTS = (
    select(
        Relation.id,
        Relation.source_id,
        func.coalesce(_SUBJECT_ENTITY.c.merged_into, _SUBJECT_ENTITY.c.id).label("subject"),
        func.coalesce(_TARGET_ENTITY.c.merged_into, _TARGET_ENTITY.c.id).label("target"),
        Relation.state,
        RelationEvidence.role,
        RelationEvidence.modality,
        RelationEvidence.valid_from,
        RelationEvidence.valid_until,
        RelationEvidence.correction,
        RelationEvidence.chunk_id,
        RelationEvidence.id.label("evidence_id"),
        Document.observed_at,
    )
    .join(RelationEvidence, RelationEvidence.relation_id == Relation.id)
    .join(Chunk, Chunk.id == RelationEvidence.chunk_id)
    .join(Document, Document.id == Chunk.document_id)
    .join(_SUBJECT_ENTITY, _SUBJECT_ENTITY.c.id == Relation.source_id)
    .join(_TARGET_ENTITY, _TARGET_ENTITY.c.id == Relation.target_id)
)


def state_statements(
    conn: Connection, namespace: str, *, subjects: Mapping[int, int] | None = None, states: Sequence[str] | None = None
) -> list[Statement]:
    """The statements of states in ``namespace`` (of ``states`` only, when given): of the subjects
    ``subjects`` maps from entity row to the entity it stands for, or of every subject (by its
    canonical entity). Their values are canonical entities."""
    query = _STATEMENTS.where(Relation.namespace == namespace, Relation.state.is_not(None))
    if states is not None:
        query = query.where(Relation.state.in_(list(states)))
    rows: list[Any] = []
    if subjects is None:
        rows = list(conn.execute(query))
    else:
        for batch in batches(list(subjects)):
            rows += conn.execute(query.where(Relation.source_id.in_(batch))).all()
    out = []
    for r in rows:
        subject = subjects[r.source_id] if subjects is not None else r.subject
        out.append(
            Statement(
                subject=subject,
                state=r.state,
                target=r.target,
                role=r.role or HOLD,
                modality=r.modality or ASSERTED,
                said=r.observed_at,
                at=r.valid_from,
                until=r.valid_until,
                correction=bool(r.correction),
                relation_id=r.id,
                chunk_id=r.chunk_id,
                order=r.evidence_id,  # the order written
            )
        )
    return out


# -- conversations ---------------------------------------------------------------------------


def turn_before(
    conn: Connection, namespace: str, observed_at: datetime, *, gap: timedelta, besides: str | None
) -> tuple[str, list[tuple[str, str, str]]] | None:
    """The turn before a memory in its conversation (see :meth:`GraphStore.turn_before`)."""
    params = {"ns": namespace, "lo": observed_at - gap, "t": observed_at, "doc": besides or ""}
    row = conn.execute(_MEMORY_BEFORE, params).first()
    if row is None or (speaker := speaker_of(row.meta or {})) is None:
        return None  # nothing just before, or no turn: the conversation does not go on
    entities = conn.execute(_LAST_CHUNK_ENTITIES, {"doc": row.id}).all()
    return speaker, [(r.label, r.key, r.name) for r in entities]


def canonical_ids(conn: Connection, entity_ids: Iterable[int]) -> dict[int, int]:
    """``entity row -> the canonical entity it stands for`` (through any merge)."""
    out: dict[int, int] = {}
    for batch in batches(sorted(entity_ids)):
        out.update(
            (row_id, canonical)
            for row_id, canonical in conn.execute(select(Entity.id, CANONICAL_ID).where(Entity.id.in_(batch)))
        )
    return out


def restrict(members: Mapping[int, int], entity_ids: Iterable[int]) -> dict[int, int]:
    """The part of a members map (:func:`group_members`) that stands for ``entity_ids``."""
    wanted = set(entity_ids)
    return {member: given for member, given in members.items() if given in wanted}
