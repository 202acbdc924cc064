"""One FTS5 table per namespace on SQLite, so that BM25 ranks with the namespace's own statistics.

The shared ``chunks_fts`` is split: each namespace's chunks go to ``chunks_fts_<16 hex digits of
the namespace's SHA-256>`` (``store.engine.keyword_table``), recorded in ``keyword_tables``. On
PostgreSQL the table is created (the models are the same on both) and stays empty: ts_rank_cd
reads only the document it ranks.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)
COLUMNS = "chunk_id UNINDEXED, text, tokenize = 'porter unicode61'"


def table_of(namespace: str) -> str:
    return "chunks_fts_" + hashlib.sha256(namespace.encode("utf-8")).hexdigest()[:16]


def upgrade() -> None:
    op.create_table(
        "keyword_tables",
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.PrimaryKeyConstraint("namespace", name="pk_keyword_tables"),
        sa.UniqueConstraint("name", name="uq_keyword_tables_name"),
    )
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    now = datetime.now(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    for namespace in conn.execute(sa.text("SELECT DISTINCT namespace FROM chunks")).scalars().all():
        name = table_of(namespace)
        conn.execute(sa.text(f'CREATE VIRTUAL TABLE "{name}" USING fts5({COLUMNS})'))
        conn.execute(
            sa.text(f'INSERT INTO "{name}" (chunk_id, text) SELECT id, text FROM chunks WHERE namespace = :ns'),
            {"ns": namespace},
        )
        conn.execute(
            sa.text("INSERT INTO keyword_tables (namespace, name, created_at) VALUES (:ns, :name, :at)"),
            {"ns": namespace, "name": name, "at": now},
        )
    op.execute("DROP TABLE IF EXISTS chunks_fts")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE chunks_fts USING fts5("
            "chunk_id UNINDEXED, namespace UNINDEXED, text, tokenize = 'porter unicode61')"
        )
        op.execute("INSERT INTO chunks_fts (chunk_id, namespace, text) SELECT id, namespace, text FROM chunks")
        for name in conn.execute(sa.text("SELECT name FROM keyword_tables")).scalars().all():
            op.execute(f'DROP TABLE IF EXISTS "{name}"')
    op.drop_table("keyword_tables")
