"""Migrations: upgrade on both dialects, models match migrations, round trip, behind = one line."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from memory_graph import GraphStore, SchemaOutOfDateError
from memory_graph.migrate import current_revision, head_revision, include_name, upgrade
from memory_graph.schema import Base


def test_migrations_match_the_models(graph: GraphStore) -> None:
    with graph.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name, "compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrations_round_trip(database_url: str) -> None:
    engine = create_engine(database_url)
    from alembic import command

    from memory_graph.migrate import alembic_config

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert current_revision(engine) is None
    assert "documents" not in inspect(engine).get_table_names()
    assert upgrade(engine) == head_revision()
    assert {"documents", "chunks", "entities", "entity_aliases", "mentions", "relations", "relation_evidence"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_migrations_upgrade_a_store_written_at_the_first_revision(database_url: str) -> None:
    """0002 adds the (namespace, observed_at) index to a store written at 0001; its rows stay."""
    from alembic import command
    from sqlalchemy import text

    from memory_graph.migrate import alembic_config

    engine = create_engine(database_url)

    def indexes() -> set[str]:
        return {index["name"] for index in inspect(engine).get_indexes("documents")}

    upgrade(engine)  # the SQLite file is new; PostgreSQL's database is at head already
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0001")
        conn.execute(
            text(
                "INSERT INTO documents (id, namespace, doc_key, content_hash, text, metadata, observed_at, created_at)"
                " VALUES ('d1', 'n', 'k1', 'h', 'kept', '{}', '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
            )
        )
    assert current_revision(engine) == "0001" and "ix_documents_namespace_observed_at" not in indexes()
    assert upgrade(engine) == head_revision()
    assert "ix_documents_namespace_observed_at" in indexes()
    with engine.begin() as conn:
        assert conn.execute(text("SELECT text FROM documents WHERE id = 'd1'")).scalar_one() == "kept"
        conn.execute(text("DELETE FROM documents WHERE id = 'd1'"))
    engine.dispose()


@pytest.mark.postgres
def test_migrations_postgres_behind_says_so(postgres_server_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    admin = create_engine(make_url(postgres_server_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "mg_behind"'))
        conn.execute(text('CREATE DATABASE "mg_behind"'))
    url = make_url(postgres_server_url).set(database="mg_behind").render_as_string(hide_password=False)
    try:
        with pytest.raises(SchemaOutOfDateError, match="run: memory-graph db upgrade") as info:
            GraphStore.from_url(url)
        assert "\n" not in str(info.value)
    finally:
        with admin.connect() as conn:
            conn.execute(text('DROP DATABASE IF EXISTS "mg_behind" WITH (FORCE)'))
        admin.dispose()


def test_migrations_older_relations_become_statements_of_states(database_url: str) -> None:
    """0004: a store written before states keeps its relations, and those whose predicate is a
    state's phrase ("live in", "move to") become statements of it, with their time the time
    their evidence was observed; others stay no state's."""
    from alembic import command
    from sqlalchemy import text

    from memory_graph.migrate import alembic_config

    engine = create_engine(database_url)
    upgrade(engine)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0003")
        conn.execute(text(
            "INSERT INTO documents (id, namespace, doc_key, content_hash, text, metadata, observed_at, created_at)"
            " VALUES ('d1', 'n', 'k1', 'h', 'I live in Lyon. We moved to Copenhagen.', '{}',"
            " '2025-05-03 10:00:00', '2025-05-03 10:00:00')"
        ))  # fmt: skip
        conn.execute(text(
            "INSERT INTO chunks (id, document_id, namespace, ordinal, start, \"end\", text, content_hash)"
            " VALUES ('c1', 'd1', 'n', 0, 0, 40, 'I live in Lyon. We moved to Copenhagen.', 'h')"
        ))  # fmt: skip
        for i, (name, label) in enumerate((("Omar", "PERSON"), ("Lyon", "LOC"), ("Copenhagen", "LOC")), 1):
            conn.execute(text(
                "INSERT INTO entities (id, namespace, label, key, name, attributes, mention_count, first_seen, last_seen)"
                f" VALUES ({i}, 'n', '{label}', '{name.lower()}', '{name}', '{{}}', 1, '2025-05-03', '2025-05-03')"
            ))  # fmt: skip
        for rid, (predicate, target) in enumerate((("live in", 2), ("move to", 3), ("visit", 3)), 1):
            conn.execute(text(
                "INSERT INTO relations (id, namespace, source_id, predicate, target_id, count, confidence,"
                " extractor_version, first_seen, last_seen)"
                f" VALUES ({rid}, 'n', 1, '{predicate}', {target}, 1, 0.8, 'v2', '2025-05-03', '2025-05-03')"
            ))  # fmt: skip
            conn.execute(text(
                "INSERT INTO relation_evidence (relation_id, chunk_id, namespace, sentence, start, \"end\", confidence)"
                f" VALUES ({rid}, 'c1', 'n', 's', {rid}, 10, 0.8)"
            ))  # fmt: skip
    assert upgrade(engine) == head_revision()
    with engine.begin() as conn:
        rows = conn.execute(text(
            "SELECT r.predicate, r.state, e.role, e.modality, e.correction FROM relations r"
            " JOIN relation_evidence e ON e.relation_id = r.id ORDER BY r.id"
        )).all()  # fmt: skip
        assert [tuple(r) for r in rows] == [
            ("live in", "lives_in", "hold", "asserted", False),
            ("move to", "lives_in", "start", "asserted", False),
            ("visit", None, None, None, False),
        ]
        # 0005: evidence written before surface forms were kept has none (readers fall back).
        surfaces = conn.execute(text(
            "SELECT surface, source_start, source_end, target_start, target_end FROM relation_evidence"
        )).all()  # fmt: skip
        assert {tuple(r) for r in surfaces} == {(None, None, None, None, None)}
        for table in ("relation_evidence", "relations", "entities", "chunks", "documents"):
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()
