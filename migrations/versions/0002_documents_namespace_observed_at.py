"""An index on documents (namespace, observed_at): the turns of one conversation around a time.

Without it, SQLite read every memory of the namespace to find the turn before a new one, at
every ``add`` (figures in docs/performance.md, "Conversation reads").

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_documents_namespace_observed_at", "documents", ["namespace", "observed_at"])


def downgrade() -> None:
    op.drop_index("ix_documents_namespace_observed_at", table_name="documents")
