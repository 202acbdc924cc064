"""The relational data model (SQLAlchemy 2 declarative); Alembic's ``target_metadata``.

The schema itself only changes through ``migrations/``; ``tests/test_migrations.py`` checks that
these tables and the migrations agree. The keyword index (SQLite FTS5 table or PostgreSQL
``tsvector`` column) is dialect-specific and lives in the migrations and ``store/engine.py`` only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations are identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER (the rowid alias, so it autoincrements) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Timestamp(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on every dialect (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Document(Base):
    """One memory item as it was given: the source of truth for its text."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("namespace", "doc_key"),
        # A conversation's turns around a time (turn_before at every add, turns_after at search).
        Index("ix_documents_namespace_observed_at", "namespace", "observed_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(255))
    # external_id when the caller gave one, else "sha256:<content hash>": the idempotency key.
    doc_key: Mapped[str] = mapped_column(String(512))
    external_id: Mapped[str | None] = mapped_column(String(512))
    source: Mapped[str | None] = mapped_column(String(255))
    content_hash: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    observed_at: Mapped[datetime] = mapped_column(Timestamp(), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp())


class Chunk(Base):
    """A piece of a document; its id is the id of its vector in Chroma."""

    __tablename__ = "chunks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    namespace: Mapped[str] = mapped_column(String(255), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    indexed_at: Mapped[datetime | None] = mapped_column(Timestamp())


class Entity(Base):
    """A canonical entity; re-mentioning it updates this row, never adds another."""

    __tablename__ = "entities"
    __table_args__ = (
        UniqueConstraint("namespace", "label", "key"),
        # Linking by name looks up (namespace, key) whatever the label.
        Index("ix_entities_namespace_key", "namespace", "key"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(255))
    label: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mention_count: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[datetime] = mapped_column(Timestamp())
    last_seen: Mapped[datetime] = mapped_column(Timestamp())
    # Alias resolution ("Bob" -> "Bob Smith") points an entity at its canonical one instead of
    # moving its rows, so every merge can be undone by clearing this (see entity_merges).
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("entities.id", ondelete="SET NULL"), index=True)


class EntityMerge(Base):
    """One alias resolution: ``entity_id`` was merged into ``into_id`` (undone when ``undone_at``)."""

    __tablename__ = "entity_merges"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(255), index=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"), index=True)
    into_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    undone_at: Mapped[datetime | None] = mapped_column(Timestamp())


class ReingestJob(Base):
    """A re-ingest or import run over one source, the checkpoint that makes it resumable."""

    __tablename__ = "reingest_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(Text)
    total: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp())
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ReingestBatch(Base):
    """A slice of a job's records; workers claim pending ones (``FOR UPDATE SKIP LOCKED``)."""

    __tablename__ = "reingest_batches"
    __table_args__ = (UniqueConstraint("job_id", "batch_no"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("reingest_jobs.id", ondelete="CASCADE"), index=True)
    batch_no: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)
    stop: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    worker: Mapped[str | None] = mapped_column(String(255))
    claimed_at: Mapped[datetime | None] = mapped_column(Timestamp())
    done_at: Mapped[datetime | None] = mapped_column(Timestamp())
    stored: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    problems: Mapped[list[Any]] = mapped_column(JSON, default=list)


class EntityAlias(Base):
    """A surface form that resolves to an entity."""

    __tablename__ = "entity_aliases"
    __table_args__ = (
        UniqueConstraint("entity_id", "alias_key"),
        Index("ix_entity_aliases_namespace_alias_key", "namespace", "alias_key"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    namespace: Mapped[str] = mapped_column(String(255))
    alias: Mapped[str] = mapped_column(String(255))
    alias_key: Mapped[str] = mapped_column(String(255))
    count: Mapped[int] = mapped_column(Integer, default=0)


class Mention(Base):
    """An entity mentioned in a chunk, at document character offsets, inside a sentence."""

    __tablename__ = "mentions"
    __table_args__ = (UniqueConstraint("chunk_id", "entity_id", "start"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"), index=True)
    chunk_id: Mapped[str] = mapped_column(ForeignKey("chunks.id", ondelete="CASCADE"), index=True)
    namespace: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(String(255))
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    sent_start: Mapped[int] = mapped_column(Integer)
    sent_end: Mapped[int] = mapped_column(Integer)


class Relation(Base):
    """A directed, typed edge between two entities; repeated evidence raises its count."""

    __tablename__ = "relations"
    __table_args__ = (
        UniqueConstraint("namespace", "source_id", "predicate", "target_id"),
        Index("ix_relations_target_id", "target_id"),
        # Deleting an entity checks its relations by either end: without it, a scan of them all.
        Index("ix_relations_source_id", "source_id"),
        # A namespace's timelines of one state (exports; the subjects' timelines read by source).
        Index("ix_relations_namespace_state", "namespace", "state"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(255))
    source_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    predicate: Mapped[str] = mapped_column(String(255))
    target_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    count: Mapped[int] = mapped_column(Integer, default=0)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    extractor_version: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(Timestamp())
    last_seen: Mapped[datetime] = mapped_column(Timestamp())
    valid_from: Mapped[datetime | None] = mapped_column(Timestamp())
    valid_until: Mapped[datetime | None] = mapped_column(Timestamp())
    # The state (memory_graph.facts) the relation is a value of; None for other relations.
    state: Mapped[str | None] = mapped_column(String(32))


class RelationEvidence(Base):
    """The sentence of a chunk that supports a relation, with its document offsets."""

    __tablename__ = "relation_evidence"
    __table_args__ = (UniqueConstraint("relation_id", "chunk_id", "start"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    relation_id: Mapped[int] = mapped_column(ForeignKey("relations.id", ondelete="CASCADE"), index=True)
    chunk_id: Mapped[str] = mapped_column(ForeignKey("chunks.id", ondelete="CASCADE"), index=True)
    namespace: Mapped[str] = mapped_column(String(255))
    sentence: Mapped[str] = mapped_column(Text)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    # A statement of a state: its role (hold, start, end, past, cancel), its modality (asserted,
    # planned), the times the text gives, and whether it corrects the statement before it.
    role: Mapped[str | None] = mapped_column(String(8))
    modality: Mapped[str | None] = mapped_column(String(12))
    valid_from: Mapped[datetime | None] = mapped_column(Timestamp())
    valid_until: Mapped[datetime | None] = mapped_column(Timestamp())
    correction: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The relation as the sentence says it: its words ("was born in") and the document offsets of
    # the full phrases of its two ends; NULL for evidence written before (migration 0005).
    surface: Mapped[str | None] = mapped_column(String(255))
    source_start: Mapped[int | None] = mapped_column(Integer)
    source_end: Mapped[int | None] = mapped_column(Integer)
    target_start: Mapped[int | None] = mapped_column(Integer)
    target_end: Mapped[int | None] = mapped_column(Integer)


class VectorCollection(Base):
    """The Chroma collection of a namespace (``vector_store.namespace_collection``): which
    namespaces have one, so that verify, counts, exports and a forget find them all without
    listing Chroma."""

    __tablename__ = "vector_collections"

    vector_index: Mapped[str] = mapped_column(String(400), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(255), primary_key=True)
    collection: Mapped[str] = mapped_column(String(512), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp())


class KeywordTable(Base):
    """The FTS5 table of a namespace's chunks on SQLite (``store.engine.keyword_table``), made by
    its first write, so that BM25 reads the namespace's own statistics. Unused on PostgreSQL."""

    __tablename__ = "keyword_tables"

    namespace: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp())
