"""One Chroma collection per namespace: the table that records them.

``vector_collections`` maps a namespace (of one vector index, ``Settings.collection``) to its
collection. Vectors are not moved by this migration (Chroma is not the database's): a store
written with the shared collection keeps working as it is, and ``memory-graph db upgrade``
moves its vectors after the schema (``vector_store.split_shared_collection``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

Ts = sa.DateTime(timezone=True)

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vector_collections",
        sa.Column("vector_index", sa.String(length=400), nullable=False),
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("collection", sa.String(length=512), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.PrimaryKeyConstraint("vector_index", "namespace", name="pk_vector_collections"),
        sa.UniqueConstraint("collection", name="uq_vector_collections_collection"),
    )


def downgrade() -> None:
    op.drop_table("vector_collections")
