"""Namespaces as users: forgetting one, memories addressed by the caller's own ids, metadata
filters on search. On SQLite and PostgreSQL (the ``manager`` fixture), each with a bad input that
changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text

from memory_graph import DocumentNotFoundError, Forgotten, InputError, MemoryManager

GONE = [
    {"text": "Zephyrine Quackenbush joined Vortexia in Reykjavik.", "external_id": "m1",
     "metadata": {"speaker": "Zephyrine Quackenbush", "kind": "episodic"},
     "observed_at": datetime(2025, 3, 1, tzinfo=UTC)},
    {"text": "I adopted a ferret named Bartholomew Snickerdoodle.", "external_id": "m2",
     "metadata": {"speaker": "Zephyrine Quackenbush", "kind": "semantic"},
     "observed_at": datetime(2025, 3, 2, tzinfo=UTC)},
    {"text": "Quackenbush moved to Tromso to work for Vortexia.", "observed_at": datetime(2025, 3, 3, tzinfo=UTC)},
]  # fmt: skip
KEPT = [
    {"text": "Alice joined Acme in Berlin last May.", "external_id": "m1", "metadata": {"speaker": "Alice"}},
    {"text": "Alice's brother Tom works at Globex in Munich.", "external_id": "m2"},
]


def snapshot(mm: MemoryManager) -> dict:
    """Every row count and the vector count."""
    with mm.graph.engine.connect() as conn:
        tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        rows = {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}
    return {**rows, "vectors": mm.vectors.count()}


def every_value(mm: MemoryManager) -> str:
    """Every value of every table and every vector record (documents and metadata), as text."""
    out = []
    with mm.graph.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    out.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
    got = mm.vectors.collection.get(include=["documents", "metadatas"])
    out += [*got["ids"], *map(str, got["documents"]), *map(str, got["metadatas"])]
    return "\n".join(out).casefold()


def test_forget_removes_every_row_and_vector_of_the_namespace(manager: MemoryManager) -> None:
    gone = manager.add_many(GONE, namespace="zeph")
    kept = manager.add_many(KEPT, namespace="alice")
    manager.delete("m1", namespace="zeph")  # a tombstone of the namespace, which goes too
    kept_before = manager.stats("alice")
    kept_hits = [h.chunk_id for h in manager.search("Where does Alice work?", namespace="alice", k=3)]

    result = manager.forget("zeph")

    assert isinstance(result, Forgotten) and result.namespace == "zeph"
    assert result.documents == 3 and result.chunks == 2 and result.vectors == 2
    assert result.entities >= 4 and result.mentions >= 4 and result.relations >= 1 and result.evidence >= 1
    assert result.merges >= 1  # "Quackenbush" was resolved into "Zephyrine Quackenbush"
    found = every_value(manager)
    needles = ["zeph", "quackenbush", "vortexia", "reykjavik", "tromso", "bartholomew", "snickerdoodle", "ferret"]
    needles += [r.document_id for r in gone] + [c for r in gone for c in r.chunk_ids]
    assert [n for n in needles if n.casefold() in found] == []
    assert manager.stats("zeph").to_dict() == {**manager.stats("zeph").to_dict(), "documents": 0, "chunks": 0,
                                               "entities": 0, "relations": 0, "mentions": 0, "vectors": 0}  # fmt: skip
    assert manager.search("Where does Zephyrine work?", namespace="zeph", k=5) == []
    # The other namespace, with the same external ids, is untouched.
    assert manager.stats("alice") == kept_before
    assert [h.chunk_id for h in manager.search("Where does Alice work?", namespace="alice", k=3)] == kept_hits
    assert manager.get("m2", namespace="alice").document_id == kept[1].document_id
    assert manager.verify().ok


def test_forget_an_unknown_namespace_removes_nothing(manager: MemoryManager) -> None:
    manager.add_many(KEPT, namespace="alice")
    before = snapshot(manager)
    assert manager.forget("nobody") == Forgotten(namespace="nobody")
    for bad in ("", "  ", None, 42):
        with pytest.raises(InputError, match="must be a non-empty string") as info:
            manager.forget(bad)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)
    assert snapshot(manager) == before
    assert manager.verify().ok


def test_get_and_delete_by_external_id_within_a_namespace(manager: MemoryManager) -> None:
    default = manager.add("Mallory sells tulips in Leiden.", external_id="m2")  # the default namespace
    other = manager.add("Niaj builds canoes in Bergen.", namespace="n2", external_id="m2")
    # The caller's own id: in the default namespace, or in the one named.
    assert manager.get("m2").document_id == default.document_id
    assert manager.get("m2", namespace="n2").document_id == other.document_id
    # The document id still works, in any namespace, and within its own when one is named.
    assert manager.get(other.document_id).namespace == "n2"
    assert manager.get(other.document_id, namespace="n2").external_id == "m2"
    with pytest.raises(DocumentNotFoundError):
        manager.get(other.document_id, namespace=manager.settings.namespace)

    manager.delete("m2")  # a newcomer's first try
    with pytest.raises(DocumentNotFoundError, match="no document 'm2' in namespace 'default'"):
        manager.get("m2")
    assert manager.get("m2", namespace="n2").chunk_ids == other.chunk_ids
    assert manager.vectors.existing_ids(default.chunk_ids) == set()
    manager.delete("m2", namespace="n2")
    assert manager.stats().documents == 0 and manager.verify().ok


def test_unknown_ids_are_not_found_and_change_nothing(manager: MemoryManager) -> None:
    plain = manager.add("Olivia paints lighthouses in Cork.", namespace="n3")  # no external id
    manager.add("Peggy knits scarves in Galway.", namespace="n3", external_id="p1")
    before = snapshot(manager)
    # Another namespace's external id, a deleted one, the content key of a memory without one.
    for memory_id, namespace in [("p1", "n4"), ("p1", None), ("nope", "n3"), ("", "n3"),
                                 (f"sha256:{'0' * 64}", "n3"), ("0" * 32, None)]:  # fmt: skip
        with pytest.raises(DocumentNotFoundError) as info:
            manager.delete(memory_id, namespace=namespace)
        assert "\n" not in str(info.value)
        with pytest.raises(DocumentNotFoundError):
            manager.get(memory_id, namespace=namespace)
    key = manager.graph.document(plain.document_id)
    assert key is not None and key.external_id is None
    assert snapshot(manager) == before
