"""Namespaces as users: forgetting one, memories addressed by the caller's own ids, metadata
filters on search. On SQLite and PostgreSQL (the ``manager`` fixture), each with a bad input that
changes nothing."""

from __future__ import annotations

import re
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
    for collection in mm.vectors.client.list_collections():  # every collection, names and metadata too
        got = collection.get(include=["documents", "metadatas"])
        out += [collection.name, str(collection.metadata), *got["ids"], *map(str, got["documents"])]
        out += [*map(str, got["metadatas"])]
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


# -- metadata filters ------------------------------------------------------------------------

NOTES = [
    {"text": "Rosalind works at Helix Labs in Cambridge.", "external_id": "e1",
     "metadata": {"kind": "episodic", "n": 3, "pinned": True}},
    {"text": "Rosalind moved to Helix Labs after her PhD in Cambridge.", "external_id": "e2",
     "metadata": {"kind": "semantic", "n": 3.0, "pinned": 1}},
    {"text": "Rosalind's lab at Helix Labs studies protein folding.", "external_id": "e3",
     "metadata": {"kind": "procedural", "n": 4, "tags": ["x"]}},
    {"text": "Helix Labs hired Rosalind as a crystallographer.", "external_id": "e4"},
]  # fmt: skip
QUESTION = "Where does Rosalind work?"


def kinds(manager: MemoryManager, **where) -> list[str | None]:
    hits = manager.search(QUESTION, namespace="f", k=10, **where)
    return sorted(str(h.metadata.get("kind")) for h in hits)


def test_where_filters_every_signal_on_both_stores(manager: MemoryManager) -> None:
    from memory_graph.filters import chroma_where, parse_where

    manager.add_many(NOTES, namespace="f")
    manager.add("Rosalind works at Helix Labs.", namespace="other", metadata={"kind": "episodic"})
    assert kinds(manager) == ["None", "episodic", "procedural", "semantic"]
    assert kinds(manager, where={"kind": "episodic"}) == ["episodic"]
    assert kinds(manager, where={"kind": "episodic"}, since="2000-01-01", until="2999-01-01") == ["episodic"]
    assert kinds(manager, where={"kind": {"$eq": "semantic"}}) == ["semantic"]
    assert kinds(manager, where={"kind": {"$in": ["episodic", "procedural"]}}) == ["episodic", "procedural"]
    # Numbers equal whatever their spelling; a boolean is no number; lists never match.
    assert kinds(manager, where={"n": 3}) == ["episodic", "semantic"]
    assert kinds(manager, where={"n": {"$in": [4.0, "3"]}}) == ["procedural"]
    assert kinds(manager, where={"pinned": True}) == ["episodic"]
    assert kinds(manager, where={"tags": "x"}) == []
    assert kinds(manager, where={"kind": {"$in": ["episodic", "semantic"]}, "n": 3.0, "pinned": True}) == ["episodic"]
    assert kinds(manager, where={"$and": [{"kind": {"$in": ["semantic", "episodic"]}}, {"pinned": 1}]}) == ["semantic"]
    # Pushed down: the keyword search in SQL and the vector search in Chroma filter themselves.
    where = parse_where({"kind": "semantic"})
    assert where is not None
    semantic = {c for r in [manager.get("e2", namespace="f")] for c in r.chunk_ids}
    found = manager.searcher.reads.keyword_search("Rosalind Helix", namespace="f", limit=10, where=where)
    assert {cid for cid, _ in found} == semantic
    embedding = manager.vectors.embed([QUESTION])[0]
    nearest = manager.vectors.query(embedding, namespace="f", k=10, where=chroma_where(where))
    assert {cid for cid, _ in nearest} == semantic
    # explain and context take the same filter.
    explained = manager.explain(QUESTION, namespace="f", k=10, where={"kind": "procedural"})
    assert [e.hit.metadata["kind"] for e in explained] == ["procedural"]
    assert "protein folding" in manager.context(QUESTION, namespace="f", where={"kind": "procedural"})
    assert "PhD" not in manager.context(QUESTION, namespace="f", where={"kind": "procedural"})


def test_where_on_a_key_no_memory_has_is_empty_and_bad_filters_are_input_errors(manager: MemoryManager) -> None:
    manager.add_many(NOTES, namespace="f")
    before = snapshot(manager)
    assert manager.search(QUESTION, namespace="f", where={"colour": "red"}) == []
    assert manager.explain(QUESTION, namespace="f", where={"kind": {"$in": ["nothing"]}}) == []
    for bad, message in [
        ({"kind": {"$gt": 1}}, "unknown operator '$gt' on 'kind'"),
        ({"$or": [{"kind": "episodic"}]}, "unknown operator '$or'"),
        ({"kind": {"$in": []}}, "'$in' on 'kind' takes a non-empty list"),
        ({"kind": {"$in": [["x"]]}}, "'$in' on 'kind' takes a non-empty list"),
        ({"kind": None}, "must be a string, number or boolean"),
        ({"kind": float("nan")}, "must be a string, number or boolean"),
        ({"bad key": 1}, "key 'bad key' is invalid"),
        ({"$and": []}, "'$and' takes a non-empty list"),
        (["kind"], "where must be a mapping"),
    ]:
        with pytest.raises(InputError, match=re.escape(message)) as info:
            manager.search(QUESTION, namespace="f", where=bad)
        assert "\n" not in str(info.value)
        with pytest.raises(InputError):
            manager.context(QUESTION, namespace="f", where=bad)
    assert snapshot(manager) == before
