"""Consistency between the relational store (the source of truth) and the vector index.

A write stores SQL first, then the vectors, then marks the chunks indexed
(``docs/architecture.md``, "Consistency between the two stores"). Whatever an interruption
leaves behind is therefore one of: chunks whose vectors are not confirmed (indexed again from
their SQL rows), vectors whose chunk is gone (deleted), or graph rows whose counts or ends
disagree (recomputed from the rows they count).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from memory_graph.records import ConsistencyReport
from memory_graph.store import ChunkRow, GraphStore
from memory_graph.vector_store import VectorIndex, stored_chunk_metadata

_REINDEX_BATCH = 256


def reindex(graph: GraphStore, vectors: VectorIndex, rows: Sequence[ChunkRow]) -> None:
    """Write the vectors of stored chunks from their SQL rows, then confirm them."""
    for i in range(0, len(rows), _REINDEX_BATCH):
        batch = rows[i : i + _REINDEX_BATCH]
        vectors.upsert([r.id for r in batch], [r.text for r in batch], [stored_chunk_metadata(r) for r in batch])
        graph.mark_indexed([r.id for r in batch])


def verify(graph: GraphStore, vectors: VectorIndex, *, repair: bool = False) -> ConsistencyReport:
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
        ok=not (missing or orphans or unindexed or problems.any()),
        chunks_without_vectors=len(missing),
        vectors_without_chunks=len(orphans),
        unindexed_chunks=len(unindexed),
        **dataclasses.asdict(problems),
    )
    if not repair or report.ok:
        return report

    vectors.delete(orphans)
    graph.repair_graph()
    rows = graph.chunks_to_index()
    rows += [r for r in graph.chunks(missing).values() if r.id not in {u.id for u in rows}]
    reindex(graph, vectors, rows)
    after = verify(graph, vectors, repair=False)
    return dataclasses.replace(report, ok=after.ok, repaired=True)
