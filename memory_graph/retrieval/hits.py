"""Hits as a search returns them: the chunk rows with the entities and relations they hold."""

from __future__ import annotations

from dataclasses import dataclass, field

from memory_graph.records import EntityRef, MemoryHit, RelationRef, Serialisable
from memory_graph.retrieval.config import SIGNALS
from memory_graph.retrieval.fusion import Candidate
from memory_graph.store import GraphStore
from memory_graph.store.rows import ChunkRow
from memory_graph.vocabulary import COOCCURRENCE


class HitContext:
    """What hits carry besides their rank, read so far by chunk id: the chunk rows and the
    entities and relations of each chunk. Reads are batched and never repeated."""

    def __init__(self, graph: GraphStore) -> None:
        self.graph = graph
        self.rows: dict[str, ChunkRow] = {}
        self.entities: dict[str, list[EntityRef]] = {}
        self.relations: dict[str, list[RelationRef]] = {}

    def read_rows(self, chunk_ids: list[str]) -> dict[str, ChunkRow]:
        self.rows |= self.graph.chunks([cid for cid in chunk_ids if cid not in self.rows])
        return {cid: self.rows[cid] for cid in chunk_ids if cid in self.rows}

    def read(self, chunk_ids: list[str]) -> None:
        """Rows, entities and relations of ``chunk_ids`` (three queries for those not read)."""
        self.read_rows(chunk_ids)
        missing = [cid for cid in chunk_ids if cid not in self.entities]
        if missing:
            entities, relations = self.graph.chunk_context(missing)
            for cid in missing:
                self.entities[cid], self.relations[cid] = entities.get(cid, []), relations.get(cid, [])


@dataclass(frozen=True)
class HitExplanation(Serialisable):
    """Why a hit was retrieved: its rank under each signal (1 = best), the query's linked
    entities, and the relations (graph paths from those entities) whose evidence it holds.
    ``gains`` is what its score gained besides the signals' shares
    (:func:`~memory_graph.retrieval.fusion.signal_shares`): ``turn``, following one of the best
    hits in its conversation, ``answer``, naming what the question asks for (a date for "when",
    a person for "who"…), and ``state``, stating the value of a state the question asks for
    (:mod:`memory_graph.retrieval.states`)."""

    hit: MemoryHit
    ranks: dict[str, int]
    linked_entities: list[EntityRef]
    graph_relations: list[RelationRef]
    gains: dict[str, float] = field(default_factory=dict)


def build_hits(
    best: list[tuple[str, Candidate]],
    graph: GraphStore,
    *,
    namespace: str,
    context: HitContext | None = None,
) -> list[MemoryHit]:
    """MemoryHits for ranked chunk ids, with entities and relations (three batched queries for
    what ``context`` has not read already)."""
    context = context or HitContext(graph)
    context.read([cid for cid, _ in best])
    hits = []
    for cid, candidate in best:
        row = context.rows.get(cid)
        if row is None or row.namespace != namespace:
            continue  # a vector whose chunk is gone (verify(repair=True) removes it), or another namespace's
        hits.append(
            MemoryHit(
                chunk_id=cid,
                document_id=row.document_id,
                external_id=row.external_id,
                namespace=row.namespace,
                text=row.text,
                score=round(candidate.score, 6),
                reasons=[s for s in SIGNALS if s in candidate.reasons],
                entities=context.entities[cid],
                relations=[r for r in context.relations[cid] if r.predicate != COOCCURRENCE],
                metadata=row.metadata,
                observed_at=row.observed_at,
            )
        )
    return hits
