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
    for groups in graph.iter_chunk_ids_by_namespace():
        for chunk_namespace, chunk_ids in groups.items():
            present = vectors.existing_ids(chunk_ids, namespace=chunk_namespace)
            missing += [cid for cid in chunk_ids if cid not in present]
    # A vector is an orphan when no chunk has its id, or (one collection per namespace) when
    # its chunk belongs to another namespace than the collection it is in.
    orphans: dict[str | None, list[str]] = {}
    for namespace, ids in vectors.iter_namespace_ids():
        known = graph.chunk_namespaces(ids)
        wrong = [vid for vid in ids if vid not in known or (namespace is not None and known[vid] != namespace)]
        if wrong:
            orphans.setdefault(namespace, []).extend(wrong)
    unindexed = graph.chunks_to_index()
    problems = graph.graph_problems()
    report = ConsistencyReport(
        ok=not (missing or orphans or unindexed or problems.any()),
        chunks_without_vectors=len(missing),
        vectors_without_chunks=sum(len(ids) for ids in orphans.values()),
        unindexed_chunks=len(unindexed),
        **dataclasses.asdict(problems),
    )
    if not repair or report.ok:
        return report

    for held_in, orphan_ids in orphans.items():
        vectors.delete(orphan_ids, namespace=held_in)
    graph.repair_graph()
    rows = graph.chunks_to_index()
    rows += [r for r in graph.chunks(missing).values() if r.id not in {u.id for u in rows}]
    reindex(graph, vectors, rows)
    after = verify(graph, vectors, repair=False)
    return dataclasses.replace(report, ok=after.ok, repaired=True)
