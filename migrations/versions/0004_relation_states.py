"""States: relations that hold one value at a time, and what each statement of one says.

``relations.state`` names the state a relation is a value of (``lives_in``, ``works_at``, ...,
see ``memory_graph/facts.py``). Each piece of evidence of such a relation is a statement of it:
``role`` (hold, start, end, past, cancel), ``modality`` (asserted, planned), the times the text
gives (``valid_from``, ``valid_until``) and whether it ``corrects`` the statement before it.
Timelines (which value is current, since when) are worked out from these when read.

A store written before keeps its relations: those whose predicate is a state's phrase ("live
in", "move to", "work at", ...) become statements of it, asserted, their time the time their
evidence was observed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The state phrases of the relations written before states (the predicates extraction made then),
# as (state, role). Fixed here: later changes to memory_graph/facts.py must not change this upgrade.
BACKFILL = {
    "live in": ("lives_in", "hold"), "live at": ("lives_in", "hold"), "reside in": ("lives_in", "hold"),
    "move to": ("lives_in", "start"), "move into": ("lives_in", "start"),
    "move back to": ("lives_in", "start"), "relocate to": ("lives_in", "start"), "settle in": ("lives_in", "start"),
    "work at": ("works_at", "hold"), "work for": ("works_at", "hold"), "join": ("works_at", "start"),
    "start at": ("works_at", "start"), "start job at": ("works_at", "start"), "quit": ("works_at", "end"),
    "be married to": ("married_to", "hold"), "marry": ("married_to", "start"), "divorce": ("married_to", "end"),
    "study at": ("studies_at", "hold"), "graduate from": ("studies_at", "end"),
}  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("relations") as batch:
        batch.add_column(sa.Column("state", sa.String(length=32), nullable=True))
    with op.batch_alter_table("relation_evidence") as batch:
        batch.add_column(sa.Column("role", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("modality", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("correction", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_relations_namespace_state", "relations", ["namespace", "state"])
    relations = sa.table("relations", sa.column("predicate", sa.String), sa.column("state", sa.String))
    evidence = sa.table(
        "relation_evidence",
        sa.column("relation_id", sa.Integer),
        sa.column("role", sa.String),
        sa.column("modality", sa.String),
    )
    relation_ids = sa.table("relations", sa.column("id", sa.Integer), sa.column("predicate", sa.String))
    for predicate, (state, role) in BACKFILL.items():
        op.execute(relations.update().where(relations.c.predicate == predicate).values(state=state))
        chosen = sa.select(relation_ids.c.id).where(relation_ids.c.predicate == predicate)
        op.execute(evidence.update().where(evidence.c.relation_id.in_(chosen)).values(role=role, modality="asserted"))


def downgrade() -> None:
    op.drop_index("ix_relations_namespace_state", table_name="relations")
    with op.batch_alter_table("relation_evidence") as batch:
        for column in ("correction", "valid_until", "valid_from", "modality", "role"):
            batch.drop_column(column)
    with op.batch_alter_table("relations") as batch:
        batch.drop_column("state")
