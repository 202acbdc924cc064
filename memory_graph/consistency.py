"""Consistency between the relational store (the source of truth) and the vector index."""

from __future__ import annotations

from memory_graph.graph_store import GraphStore
from memory_graph.records import ConsistencyReport
from memory_graph.vector_store import VectorStore, stored_chunk_metadata


def verify(graph: GraphStore, vectors: VectorStore, *, repair: bool = False) -> ConsistencyReport:
    """Find chunks without vectors, vectors without chunks, unconfirmed chunks and dangling graph
    rows; with ``repair``, re-index and delete from the SQL side, then check again.
    """
    missing: list[str] = []
    for ids in graph.iter_chunk_ids():
        present = vectors.existing_ids(ids)
        missing += [cid for cid in ids if cid not in present]
    orphans: list[str] = []
    for ids in vectors.iter_ids():
        known = graph.existing_chunk_ids(ids)
        orphans += [vid for vid in ids if vid not in known]
    unindexed = graph.chunks_to_index()
    problems = graph.graph_problems()
    report = ConsistencyReport(
        ok=not (missing or orphans or unindexed or any(problems.values())),
        chunks_without_vectors=len(missing),
        vectors_without_chunks=len(orphans),
        unindexed_chunks=len(unindexed),
        **problems,
    )
    if not repair or report.ok:
        return report

    vectors.delete(orphans)
    graph.repair_graph()
    rows = graph.chunks_to_index()
    rows += [r for r in graph.chunks(missing).values() if r.id not in {u.id for u in rows}]
    for i in range(0, len(rows), 256):
        batch = rows[i : i + 256]
        vectors.upsert(
            [r.id for r in batch],
            [r.text for r in batch],
            [stored_chunk_metadata(r) for r in batch],
        )
        graph.mark_indexed([r.id for r in batch])
    after = verify(graph, vectors, repair=False)
    return ConsistencyReport(**{**report.to_dict(), "ok": after.ok, "repaired": True})
