"""MemoryManager end to end on SQLite and PostgreSQL, real Chroma, pipeline and embeddings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memory_graph import DocumentNotFoundError, EntityNotFoundError, InputError, MemoryHit, MemoryManager
from memory_graph.vector_store import chunk_metadata

CHAT = [
    {"text": "Alice joined Acme in Berlin last May.", "external_id": "msg-1", "metadata": {"speaker": "Alice"},
     "observed_at": datetime(2025, 6, 1, tzinfo=UTC)},
    {"text": "I moved to Lisbon last year and my sister Carol works at Google.", "external_id": "msg-2",
     "metadata": {"speaker": "Bob"}, "observed_at": datetime(2025, 6, 2, tzinfo=UTC)},
    {"text": "Carol said the Google office in Lisbon has a great rooftop cafe.", "external_id": "msg-3",
     "observed_at": datetime(2025, 6, 3, tzinfo=UTC)},
]  # fmt: skip


def snapshot(mm: MemoryManager, namespace: str | None = None) -> dict:
    return mm.stats(namespace).to_dict()


def test_manager_contract(manager: MemoryManager) -> None:
    rec = manager.add(
        "Alice joined Acme in Berlin last May.",
        namespace="user-42",
        metadata={"speaker": "Alice"},
        observed_at=datetime(2025, 6, 1),
        external_id="msg-1",
    )
    assert rec.external_id == "msg-1" and rec.namespace == "user-42" and len(rec.chunk_ids) == 1
    names = {e.name for e in rec.entities}
    assert {"Alice", "Berlin"} <= names
    assert any(r.source.name == "Alice" and r.predicate == "join" for r in rec.relations)
    # As the sentence says it, through the store: the words and the full phrases of both ends.
    dated = next(r for r in rec.relations if r.predicate == "join")
    assert (dated.source_phrase, dated.surface, dated.target_phrase) == ("Alice", "joined", "last May")
    assert dated.reading == "Alice joined last May"
    # Acme and Berlin share the sentence but nothing is stated between them: no relation shown.
    assert not any(r.predicate == "mentioned with" for r in rec.relations)
    assert any(r.predicate == "mentioned with" for r in manager.graph.relation_rows("user-42"))  # kept for search

    manager.add_many(CHAT[1:], namespace="user-42")
    hits = manager.search("Where does Alice work?", namespace="user-42", k=5)
    assert hits and isinstance(hits[0], MemoryHit)
    top = hits[0]
    assert top.external_id == "msg-1"
    assert top.document_id == rec.document_id
    assert top.observed_at == datetime(2025, 6, 1, tzinfo=UTC)
    assert top.metadata == {"speaker": "Alice"}
    assert set(top.reasons) <= {"vector", "keyword", "entity", "graph"} and "vector" in top.reasons
    assert {e.name for e in top.entities} >= {"Alice", "Berlin"}
    assert any(r.evidence == "Alice joined Acme in Berlin last May." for r in top.relations)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    context = manager.context("Where does Alice work?", namespace="user-42", max_tokens=800)
    assert "Alice joined Acme in Berlin last May." in context and "## Relations" in context

    view = manager.entity("alice", namespace="user-42")
    assert view.entity.name == "Alice" and view.entity.label == "PERSON"
    assert not any(r.predicate == "mentioned with" for r in [*top.relations, *view.relations])
    assert {(r.predicate, r.surface) for r in view.relations} >= {("join", "joined"), ("join in", "joined in")}
    assert view.mentions and view.mentions[0].sentence == "Alice joined Acme in Berlin last May."

    assert manager.verify().ok


def test_manager_speaker_resolves_first_person(manager: MemoryManager) -> None:
    rec = manager.add(CHAT[1]["text"], namespace="u", metadata={"speaker": "Bob"}, external_id="m2")
    triples = {(r.source.name, r.predicate, r.target.name) for r in rec.relations}
    assert ("Bob", "lives in", "Lisbon") in triples
    assert ("Bob", "sister", "Carol") in triples
    assert "I" not in manager.entity("Bob", namespace="u").aliases


PUNTING = [
    ("Daniel", "2025-07-27T10:00:00", "Also, did you go and see Anjali in the end?"),
    ("Priya", "2025-07-27T10:01:00", "Yes! She took me punting on the river and I nearly fell in."),
    ("Daniel", "2025-07-27T11:30:00", "She sounds like a great guide."),  # ninety minutes on: another conversation
]


@pytest.mark.parametrize("one_at_a_time", [True, False], ids=["add", "add_many"])
def test_manager_a_turn_opening_with_a_pronoun_names_whom_the_turn_before_named(
    manager: MemoryManager, one_at_a_time: bool
) -> None:
    """ "She" in Priya's reply is Anjali, whom Daniel's question named, whether the question was
    stored by an earlier call (a chat backend adds each turn) or comes earlier in the batch; the
    relation is Anjali's. A turn after the conversation's gap has no turn before it."""
    rows = [{"text": text, "external_id": f"p{i}", "metadata": {"speaker": who}, "observed_at": at}
            for i, (who, at, text) in enumerate(PUNTING)]  # fmt: skip
    records = (
        [manager.add(**row, namespace="chat") for row in rows]
        if one_at_a_time
        else manager.add_many(rows, namespace="chat")
    )
    reply = {(r.source.name, r.predicate, r.target.name) for r in records[1].relations}
    assert ("Anjali", "take", "Priya") in reply
    assert [m.text for m in manager.entity("Anjali", namespace="chat").mentions if m.text == "She"] == ["She"]
    assert not any(e.name == "Anjali" for e in records[2].entities)


def test_manager_add_is_idempotent(manager: MemoryManager) -> None:
    manager.add_many(CHAT, namespace="n")
    before = snapshot(manager, "n")
    again = manager.add_many(CHAT, namespace="n")
    assert not any(r.created for r in again)
    assert snapshot(manager, "n") == before
    # Same text without an external id is the same memory too.
    first = manager.add("Dana likes hiking in the Alps.", namespace="n")
    second = manager.add("Dana likes hiking in the Alps.", namespace="n")
    assert first.document_id == second.document_id and not second.created


def test_manager_re_mentioning_updates_entities_not_duplicates(manager: MemoryManager) -> None:
    manager.add("Alice lives in Berlin.", namespace="n", external_id="a")
    manager.add("Alice loves Berlin in the spring.", namespace="n", external_id="b")
    berlin = manager.entity("Berlin", namespace="n")
    assert berlin.mention_count == 2
    assert [(r.label, r.name) for r in manager.graph.entity_rows("n")].count(("LOC", "Berlin")) == 1


def test_manager_replacing_text_replaces_the_memory(manager: MemoryManager) -> None:
    first = manager.add("Erin works at Initech in Austin.", namespace="n", external_id="e")
    second = manager.add("Erin works at Globex in Denver.", namespace="n", external_id="e")
    assert second.document_id == first.document_id and second.created
    assert set(first.chunk_ids).isdisjoint(second.chunk_ids)
    with pytest.raises(EntityNotFoundError):
        manager.entity("Austin", namespace="n")
    assert manager.stats("n").documents == 1
    assert manager.verify().ok


def test_manager_namespaces_are_isolated(manager: MemoryManager) -> None:
    manager.add("Frank's dog is called Rex.", namespace="alpha", external_id="x")
    manager.add("Grace's cat is called Tom.", namespace="beta", external_id="x")
    hits = manager.search("What is the dog called?", namespace="beta", k=5)
    assert hits and all(h.namespace == "beta" for h in hits)
    assert all("Rex" not in h.text for h in hits)
    with pytest.raises(EntityNotFoundError):
        manager.entity("Frank", namespace="beta")
    assert manager.stats("alpha").documents == 1 and manager.stats("beta").documents == 1


def test_namespace_chunks_counts_and_sees_other_namespaces(manager: MemoryManager) -> None:
    """Both probes for another namespace: one sorting after ("c") and one before ("a")."""
    manager.add("Frank's dog is called Rex.", namespace="b", external_id="b1")
    assert manager.searcher.reads.namespace_chunks("b") == (1, True)
    later = manager.add("Grace's cat is called Tom.", namespace="c", external_id="c1")
    assert manager.searcher.reads.namespace_chunks("b") == (1, False)
    manager.delete(later.document_id)
    assert manager.searcher.reads.namespace_chunks("b") == (1, True)
    manager.add("Grace's cat is called Tom.", namespace="a", external_id="a1")
    assert manager.searcher.reads.namespace_chunks("b") == (1, False)
    assert manager.searcher.reads.namespace_chunks("nobody") == (0, False)
    ids = manager.search("Frank's dog", namespace="b", k=1)[0].chunk_id, *later.chunk_ids, "no-such-chunk"
    assert manager.searcher.reads.count_in_namespace("b", ids) == 1


def test_manager_search_reads_through_one_connection(manager: MemoryManager) -> None:
    """A search's dozen reads share one pooled connection; the pin ends with the search."""
    from sqlalchemy import event

    manager.add_many(CHAT, namespace="n")
    checkouts = []
    event.listen(manager.graph.engine, "checkout", lambda *args: checkouts.append(1))
    assert manager.search("Where does Carol work?", namespace="n", k=3)
    assert len(checkouts) == 1
    manager.stats("n")
    assert len(checkouts) > 1


def test_manager_search_stays_in_its_namespace_when_the_vector_filter_is_skipped(manager: MemoryManager) -> None:
    """A namespace holding every chunk of the database is searched in Chroma without the
    namespace filter first. When the collection also holds another namespace's vectors (here:
    written by another database sharing the collection) and they crowd the unfiltered nearest,
    the filtered search must still find the namespace's own chunks by vector."""
    manager.add("Frank's dog is called Rex.", namespace="alpha", external_id="a1")
    manager.add("Frank walks Rex along the river every morning.", namespace="alpha", external_id="a2")
    assert manager.searcher.reads.namespace_chunks("alpha") == (2, True)
    foreign = [f"What is the dog called, number {i}?" for i in range(30)]
    manager.vectors.upsert(
        [f"foreign-{i}" for i in range(30)],
        foreign,
        [chunk_metadata(namespace="beta", document_id=f"foreign-{i}", observed_at=None) for i in range(30)],
    )
    hits = manager.search("What is the dog called?", namespace="alpha", k=5)
    assert {h.external_id for h in hits} == {"a1", "a2"}
    assert all("vector" in h.reasons for h in hits)


def test_manager_search_with_a_very_long_query(manager: MemoryManager) -> None:
    """A whole transcript as the query: its 40,000 distinct n-grams are more names to look up
    than PostgreSQL binds in one statement (65,535 parameters); the lookup must batch them."""
    manager.add("Frank's dog is called Rex.", namespace="n", external_id="x")
    query = " ".join(f"word{i}" for i in range(10_000)) + " Where is Frank's dog Rex?"
    hits = manager.search(query, namespace="n", k=3)
    assert [h.external_id for h in hits] == ["x"]


def test_manager_delete_removes_from_both_stores(manager: MemoryManager) -> None:
    keep = manager.add("Heidi teaches chemistry in Zurich.", namespace="n", external_id="keep")
    gone = manager.add("Ivan repairs bicycles in Oslo.", namespace="n", external_id="gone")
    manager.delete(gone.document_id)
    assert manager.vectors.existing_ids(gone.chunk_ids) == set()
    assert manager.graph.existing_chunk_ids(gone.chunk_ids) == set()
    assert all(h.document_id != gone.document_id for h in manager.search("bicycles Oslo", namespace="n", k=5))
    with pytest.raises(EntityNotFoundError):
        manager.entity("Ivan", namespace="n")
    with pytest.raises(DocumentNotFoundError):
        manager.delete(gone.document_id)
    assert manager.get(keep.document_id).chunk_ids == keep.chunk_ids
    stats = manager.stats("n")
    assert (stats.documents, stats.chunks, stats.vectors) == (1, 1, 1)
    assert manager.verify().ok


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("x" * 10_000_001, "more than the limit"),
        ("bad \ud800 surrogate", "not valid Unicode"),
        (42, "must be a string"),
    ],
)
def test_manager_bad_input_changes_nothing(manager: MemoryManager, text, message: str) -> None:
    manager.add("Judy plays the cello in Vienna.", namespace="n", external_id="ok")
    before = snapshot(manager)
    with pytest.raises(InputError, match=message) as info:
        manager.add(text, namespace="n")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError):
        manager.add_many([{"text": "A fine row about Kyoto."}, {"text": text}], namespace="n")
    assert snapshot(manager) == before


def test_manager_bad_rows_name_their_position(manager: MemoryManager) -> None:
    with pytest.raises(InputError, match="row 1 has unknown keys"):
        manager.add_many([{"text": "fine"}, {"text": "x", "colour": "red"}])
    with pytest.raises(InputError, match="row 0 has no 'text'"):
        manager.add_many([{"external_id": "1"}])
    with pytest.raises(InputError, match="observed_at"):
        manager.add("Leo went to Rome.", observed_at="next tuesday-ish")


def test_manager_unknown_entity_and_document(manager: MemoryManager) -> None:
    with pytest.raises(EntityNotFoundError, match="no entity 'Nobody' in namespace 'n'"):
        manager.entity("Nobody", namespace="n")
    with pytest.raises(DocumentNotFoundError):
        manager.get("0" * 32)


def test_manager_search_time_window(manager: MemoryManager) -> None:
    manager.add_many(CHAT, namespace="t")
    hits = manager.search("Lisbon", namespace="t", k=5, since="2025-06-03")
    assert [h.external_id for h in hits] == ["msg-3"]
    hits = manager.search("Lisbon", namespace="t", k=5, until=datetime(2025, 6, 3, tzinfo=UTC))
    assert {h.external_id for h in hits} <= {"msg-1", "msg-2"} and "msg-2" in {h.external_id for h in hits}


def test_manager_results_serialise_to_json(manager: MemoryManager) -> None:
    import json

    rec = manager.add(**CHAT[0], namespace="j")
    hit = manager.search("Alice", namespace="j", k=1)[0]
    for obj in (rec, hit, manager.entity("Alice", namespace="j"), manager.verify(), manager.stats()):
        assert json.loads(obj.to_json()) == obj.to_dict()
    assert hit.to_dict()["observed_at"] == "2025-06-01T00:00:00+00:00"


def test_manager_is_safe_to_share_between_threads(manager: MemoryManager) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def worker(i: int) -> int:
        for j in range(3):
            manager.add(
                f"Worker {i} filed report {j} about the Oslo office.", namespace="threads", external_id=f"{i}-{j}"
            )
            manager.search("Oslo office report", namespace="threads", k=3)
        return i

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert sorted(pool.map(worker, range(4))) == [0, 1, 2, 3]
    stats = manager.stats("threads")
    assert (stats.documents, stats.chunks, stats.vectors) == (12, 12, 12)
    assert manager.verify().ok


def test_manager_warm_up_freezes_what_is_loaded_and_still_collects_new_garbage(manager: MemoryManager) -> None:
    import gc
    import weakref

    class Node:
        pass

    try:
        manager.warm_up()
        frozen = gc.get_freeze_count()
        assert frozen > 100_000  # the loaded libraries' objects, out of the full passes
        cycle = Node()
        cycle.self = cycle  # garbage only the cyclic collector can free
        alive = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert alive() is None
        manager.add(CHAT[0]["text"], namespace="warm", external_id="msg-1", metadata=CHAT[0]["metadata"])
        assert [hit.external_id for hit in manager.search("Where does Alice work?", namespace="warm")] == ["msg-1"]
    finally:
        gc.unfreeze()


@pytest.mark.slow
def test_manager_eight_threads_of_mixed_operations(manager: MemoryManager) -> None:
    """8 threads x 25 mixed operations (add, search, get, stats, delete) on one manager: no
    error, and both stores agree afterwards on exactly what was added and not deleted."""
    from concurrent.futures import ThreadPoolExecutor

    def worker(i: int) -> tuple[int, int]:
        mine: list[str] = []
        added = deleted = 0
        for j in range(25):
            kind = j % 5
            if kind in (0, 4) or not mine:
                rec = manager.add(
                    f"Agent {i} logged visit {j} to the Bergen yard.", namespace="mixed", external_id=f"{i}-{j}"
                )
                mine.append(rec.document_id)
                added += 1
            elif kind == 1:
                manager.search(f"Agent {i} visit to Bergen", namespace="mixed", k=3)
            elif kind == 2:
                assert manager.get(mine[-1]).namespace == "mixed"
                manager.stats("mixed")
            else:
                manager.delete(mine.pop(0))
                deleted += 1
        return added, deleted

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8)))
    live = sum(a - d for a, d in results)
    stats = manager.stats("mixed")
    assert (stats.documents, stats.chunks, stats.vectors) == (live, live, live)
    assert manager.verify().ok
