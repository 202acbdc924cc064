"""Relations as the sentence says them: the predicate as written and the spans of both ends.

Each piece of evidence of a relation keeps ``surface`` (the relation's words in the sentence,
"was born in", "is the CEO of") and the document offsets of the full phrases of its source and
target ("the first Prime Minister of Australia"), beside the normalised predicate and the
canonical entities the graph joins on. Evidence written before has none of these (``NULL``):
readers fall back to the predicate and the entity names.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("surface", "source_start", "source_end", "target_start", "target_end")


def upgrade() -> None:
    with op.batch_alter_table("relation_evidence") as batch:
        batch.add_column(sa.Column("surface", sa.String(length=255), nullable=True))
        for column in COLUMNS[1:]:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("relation_evidence") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
