"""Indexes on the foreign keys that deleting an entity checks: relations.source_id and
entity_merges.entity_id / into_id.

Without them, SQLite scanned every relation and every merge for each entity a delete removed,
so a ``delete`` grew with the store (figures in docs/performance.md, "Deletes").

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_relations_source_id", "relations", "source_id"),
    ("ix_entity_merges_entity_id", "entity_merges", "entity_id"),
    ("ix_entity_merges_into_id", "entity_merges", "into_id"),
)


def upgrade() -> None:
    for name, table, column in INDEXES:
        op.create_index(name, table, [column])


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
