"""Initial schema: documents, chunks, entities (with undoable merges), aliases, mentions, relations,
evidence, the keyword index, and re-ingest jobs/batches.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("doc_key", sa.String(512), nullable=False),
        sa.Column("external_id", sa.String(512), nullable=True),
        sa.Column("source", sa.String(255), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("observed_at", Ts, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("deleted_at", Ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_documents"),
        sa.UniqueConstraint("namespace", "doc_key", name="uq_documents_namespace_doc_key"),
    )
    op.create_index("ix_documents_observed_at", "documents", ["observed_at"])
    op.create_table(
        "chunks",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("indexed_at", Ts, nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name="fk_chunks_document_id_documents", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_chunks"),
    )
    op.create_index("ix_chunks_document_id", "chunks", ["document_id"])
    op.create_index("ix_chunks_namespace", "chunks", ["namespace"])
    op.create_table(
        "entities",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("mention_count", sa.Integer(), nullable=False),
        sa.Column("first_seen", Ts, nullable=False),
        sa.Column("last_seen", Ts, nullable=False),
        sa.Column("merged_into", Id, nullable=True),
        sa.ForeignKeyConstraint(
            ["merged_into"], ["entities.id"], name="fk_entities_merged_into_entities", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_entities"),
        sa.UniqueConstraint("namespace", "label", "key", name="uq_entities_namespace_label_key"),
    )
    op.create_index("ix_entities_merged_into", "entities", ["merged_into"])
    op.create_index("ix_entities_namespace_key", "entities", ["namespace", "key"])
    op.create_table(
        "entity_aliases",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("entity_id", Id, nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("alias", sa.String(255), nullable=False),
        sa.Column("alias_key", sa.String(255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"], ["entities.id"], name="fk_entity_aliases_entity_id_entities", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_entity_aliases"),
        sa.UniqueConstraint("entity_id", "alias_key", name="uq_entity_aliases_entity_id_alias_key"),
    )
    op.create_index("ix_entity_aliases_namespace_alias_key", "entity_aliases", ["namespace", "alias_key"])
    op.create_table(
        "mentions",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("entity_id", Id, nullable=False),
        sa.Column("chunk_id", sa.String(40), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("text", sa.String(255), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("sent_start", sa.Integer(), nullable=False),
        sa.Column("sent_end", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["chunk_id"], ["chunks.id"], name="fk_mentions_chunk_id_chunks", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["entity_id"], ["entities.id"], name="fk_mentions_entity_id_entities", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mentions"),
        sa.UniqueConstraint("chunk_id", "entity_id", "start", name="uq_mentions_chunk_id_entity_id_start"),
    )
    op.create_index("ix_mentions_entity_id", "mentions", ["entity_id"])
    op.create_index("ix_mentions_chunk_id", "mentions", ["chunk_id"])
    op.create_table(
        "relations",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("source_id", Id, nullable=False),
        sa.Column("predicate", sa.String(255), nullable=False),
        sa.Column("target_id", Id, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("extractor_version", sa.String(64), nullable=False),
        sa.Column("first_seen", Ts, nullable=False),
        sa.Column("last_seen", Ts, nullable=False),
        sa.Column("valid_from", Ts, nullable=True),
        sa.Column("valid_until", Ts, nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["entities.id"], name="fk_relations_source_id_entities", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["entities.id"], name="fk_relations_target_id_entities", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_relations"),
        sa.UniqueConstraint(
            "namespace",
            "source_id",
            "predicate",
            "target_id",
            name="uq_relations_namespace_source_id_predicate_target_id",
        ),
    )
    op.create_index("ix_relations_target_id", "relations", ["target_id"])
    op.create_table(
        "relation_evidence",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("relation_id", Id, nullable=False),
        sa.Column("chunk_id", sa.String(40), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("sentence", sa.Text(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chunk_id"], ["chunks.id"], name="fk_relation_evidence_chunk_id_chunks", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["relation_id"], ["relations.id"], name="fk_relation_evidence_relation_id_relations", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_relation_evidence"),
        sa.UniqueConstraint("relation_id", "chunk_id", "start", name="uq_relation_evidence_relation_id_chunk_id_start"),
    )
    op.create_index("ix_relation_evidence_relation_id", "relation_evidence", ["relation_id"])
    op.create_index("ix_relation_evidence_chunk_id", "relation_evidence", ["chunk_id"])

    op.create_table(
        "entity_merges",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("entity_id", Id, nullable=False),
        sa.Column("into_id", Id, nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("undone_at", Ts, nullable=True),
        sa.ForeignKeyConstraint(
            ["entity_id"], ["entities.id"], name="fk_entity_merges_entity_id_entities", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["into_id"], ["entities.id"], name="fk_entity_merges_into_id_entities", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_entity_merges"),
    )
    op.create_index("ix_entity_merges_namespace", "entity_merges", ["namespace"])
    op.create_table(
        "reingest_jobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("finished_at", Ts, nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reingest_jobs"),
    )
    op.create_table(
        "reingest_batches",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("stop", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("claimed_at", Ts, nullable=True),
        sa.Column("done_at", Ts, nullable=True),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["reingest_jobs.id"], name="fk_reingest_batches_job_id_reingest_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reingest_batches"),
        sa.UniqueConstraint("job_id", "batch_no", name="uq_reingest_batches_job_id_batch_no"),
    )
    op.create_index("ix_reingest_batches_job_id", "reingest_batches", ["job_id"])
    op.create_index("ix_reingest_batches_status", "reingest_batches", ["status"])

    # Keyword index: FTS5 (BM25 ranking) on SQLite, a generated tsvector on PostgreSQL.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE chunks_fts USING fts5("
            "chunk_id UNINDEXED, namespace UNINDEXED, text, tokenize = 'porter unicode61')"
        )
    else:
        op.execute(
            "ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
        )
        op.execute("CREATE INDEX ix_chunks_tsv ON chunks USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    for table in (
        "reingest_batches",
        "reingest_jobs",
        "entity_merges",
        "relation_evidence",
        "relations",
        "mentions",
        "entity_aliases",
        "entities",
        "chunks",
        "documents",
    ):
        op.drop_table(table)
