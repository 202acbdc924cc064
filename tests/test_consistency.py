"""verify/repair: crashes between the two stores are found and fixed from the SQL side."""

from __future__ import annotations

import contextlib

from memory_graph import MemoryManager
from memory_graph.ingest import make_input, store_memories


def test_consistency_vector_write_lost(manager: MemoryManager) -> None:
    """SQL committed, the process died before the vectors were written."""
    rec = manager.add("Mallory audits banks in Geneva.", namespace="n", external_id="m")
    manager.vectors.delete(rec.chunk_ids)  # what a crash before the upsert leaves behind
    report = manager.verify()
    assert not report.ok and report.chunks_without_vectors == 1
    repaired = manager.verify(repair=True)
    assert repaired.ok and repaired.repaired
    assert manager.vectors.existing_ids(rec.chunk_ids) == set(rec.chunk_ids)
    assert manager.search("Who audits banks?", namespace="n", k=1)[0].document_id == rec.document_id


def test_consistency_unconfirmed_chunks_are_indexed(manager: MemoryManager) -> None:
    """Crash after SQL, before the vectors and before indexed_at: repair indexes them.

    A crash cannot be timed between the two stores of one call, so this is the suite's one
    stand-in: a vector store that raises on first use, as a dead Chroma would.
    """
    item = make_input("Niaj sells maps in Cairo.", namespace="n", external_id="x", max_chars=10_000)

    class Crash(Exception):
        pass

    class FailingVectors:
        def __getattr__(self, name):
            raise Crash

    with contextlib.suppress(Crash):
        store_memories(
            [item], graph=manager.graph, vectors=FailingVectors(), extractor=manager.extractor, chunk_size=800
        )  # type: ignore[arg-type]
    report = manager.verify()
    assert report.unindexed_chunks == 1 and report.chunks_without_vectors == 1
    assert manager.verify(repair=True).ok
    assert manager.search("maps Cairo", namespace="n", k=1)[0].external_id == "x"


def test_consistency_orphan_vectors_are_removed(manager: MemoryManager) -> None:
    manager.add("Olivia paints in Lyon.", namespace="n")
    manager.vectors.upsert(["ghost"], ["a vector without a chunk"], [{"namespace": "n", "document_id": "none"}])
    report = manager.verify()
    assert report.vectors_without_chunks == 1 and not report.ok
    assert manager.verify(repair=True).ok
    assert manager.vectors.existing_ids(["ghost"]) == set()
