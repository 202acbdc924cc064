"""Query time: vector, keyword, entity and graph signals, fused into ranked hits.

1. Vector search in Chroma and keyword search (BM25 / full-text) in the relational store; the
   query embedding runs in a worker thread while the query is parsed and linked.
2. Entity linking of the query with the same pipeline: exact names and aliases, fuzzy matches on
   canonical names, and dates resolved to DATE entities ("last May" → 2025-05) → the chunks that
   mention the linked entities, weighted by how specific each entity is (IDF).
3. Graph expansion with bounded fan-out: relations around the linked entities (their evidence
   chunks, and the chunks *about* their neighbours), and bridges from the best first-stage hits
   through the entities they mention to the chunks about those entities (two-hop questions:
   "the director of film X was born where?" → X's chunk names the director → the director's chunk).
4. Weighted reciprocal rank fusion; questions asking "when" favour chunks that carry dates.
   Each hit records which signals found it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from memory_graph.extraction import CONCEPT, NAMED_LABELS, Extractor, normalize_key
from memory_graph.graph_store import GraphStore
from memory_graph.records import EntityRef, MemoryHit, RelationRef, _Serialisable
from memory_graph.temporal import is_when_question
from memory_graph.vector_store import VectorStore

SIGNALS = ("vector", "keyword", "entity", "graph")
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="memory-graph-search")


@dataclass(frozen=True)
class SearchConfig:
    """How :func:`search_memories` weighs and bounds its signals."""

    oversample: int = 4  # candidates per signal: k * oversample (at least min_candidates)
    min_candidates: int = 20
    rrf_k: int = 60
    weights: dict[str, float] = field(
        default_factory=lambda: {"vector": 1.0, "keyword": 1.0, "entity": 0.8, "graph": 1.0}
    )
    hops: int = 1  # 1: bridges from the best hits; 2: also the relation neighbours of linked entities
    fanout: int = 8  # relations followed per linked entity
    bridge_hits: int = 3  # first-stage hits whose entities seed the bridges
    bridge_entities: int = 12  # entities followed to the chunks about them
    fuzzy: bool = True
    when_boost: float = 1.0  # for "when" questions: chunks with dates gain this many rank-1 shares


DEFAULT_SEARCH = SearchConfig()


@dataclass
class _Candidate:
    score: float = 0.0
    reasons: set[str] = field(default_factory=set)
    ranks: dict[str, int] = field(default_factory=dict)
    relation_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class HitExplanation(_Serialisable):
    """Why a hit was retrieved: its rank under each signal (1 = best), the query's linked
    entities, and the relations (graph paths from those entities) whose evidence it holds."""

    hit: MemoryHit
    ranks: dict[str, int]
    linked_entities: list[EntityRef]
    graph_relations: list[RelationRef]


def link_query_entities(
    query: str,
    *,
    namespace: str,
    graph: GraphStore,
    extractor: Extractor,
    fuzzy: bool = True,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Entities of ``namespace`` the query refers to, canonical, most mentioned first."""
    doc = extractor.parse(query)
    extraction = extractor.from_doc(doc, observed_at=now or datetime.now(UTC))
    keys = [e.key for e in extraction.entities]
    # Proper nouns the NER missed ("what does bob like?") still name entities.
    keys += [normalize_key(t.text) for t in doc if t.pos_ == "PROPN" or (t.is_title and not t.is_sent_start)]
    linked = {e["id"]: e for e in graph.find_entities(namespace, keys)}
    # A month links the days inside it and a day the month around it ("March 2025" ~ 2025-03-13).
    dates = [e.attributes["date"] for e in extraction.entities if e.label == "DATE" and "date" in e.attributes]
    for entity in graph.find_dates(namespace, dates) if dates else []:
        linked.setdefault(entity["id"], entity)
    if fuzzy:
        found = {e["key"] for e in linked.values()}
        # Only names of two or more words: a single word ("Nixon") matches too many longer names;
        # unambiguous ones were merged into their full name at ingest already.
        names = [
            e.text
            for e in extraction.entities
            if e.label not in (CONCEPT, "DATE") and e.key not in found and len(e.key.split()) > 1
        ]
        for entity in graph.find_entities_fuzzy(namespace, names, limit=10) if names else []:
            linked.setdefault(entity["id"], entity)
    return list(linked.values())


def search_memories(
    query: str,
    *,
    namespace: str,
    k: int,
    graph: GraphStore,
    vectors: VectorStore,
    extractor: Extractor,
    since: datetime | None = None,
    until: datetime | None = None,
    config: SearchConfig = DEFAULT_SEARCH,
) -> list[MemoryHit]:
    """Rank the chunks of ``namespace`` for ``query``; see the module docstring."""
    best, _ = _rank(query, namespace=namespace, k=k, graph=graph, vectors=vectors, extractor=extractor,
                    since=since, until=until, config=config)  # fmt: skip
    return build_hits(best, graph)


def explain_search(
    query: str,
    *,
    namespace: str,
    k: int,
    graph: GraphStore,
    vectors: VectorStore,
    extractor: Extractor,
    since: datetime | None = None,
    until: datetime | None = None,
    config: SearchConfig = DEFAULT_SEARCH,
) -> list[HitExplanation]:
    """The hits of :func:`search_memories` with the evidence of how each was found."""
    best, linked = _rank(query, namespace=namespace, k=k, graph=graph, vectors=vectors, extractor=extractor,
                         since=since, until=until, config=config)  # fmt: skip
    hits = build_hits(best, graph)
    linked_refs = [EntityRef(e["id"], e["name"], e["label"]) for e in linked]
    by_chunk = dict(best)
    out = []
    for hit in hits:
        candidate = by_chunk[hit.chunk_id]
        wanted = set(candidate.relation_ids)
        out.append(
            HitExplanation(
                hit=hit,
                ranks=dict(candidate.ranks),
                linked_entities=linked_refs,
                graph_relations=[r for r in hit.relations if r.id in wanted],
            )
        )
    return out


def _rank(
    query: str,
    *,
    namespace: str,
    k: int,
    graph: GraphStore,
    vectors: VectorStore,
    extractor: Extractor,
    since: datetime | None,
    until: datetime | None,
    config: SearchConfig,
) -> tuple[list[tuple[str, _Candidate]], list[dict[str, Any]]]:
    n = max(k * config.oversample, config.min_candidates)

    def vector_search() -> list[str]:
        embedding = vectors.embed([query])[0]
        return [cid for cid, _ in vectors.query(embedding, namespace=namespace, k=n, since=since, until=until)]

    pending_vector = _POOL.submit(vector_search)
    ranked: dict[str, list[str]] = {}
    ranked["keyword"] = [
        cid for cid, _ in graph.keyword_search(query, namespace=namespace, limit=n, since=since, until=until)
    ]
    linked = link_query_entities(query, namespace=namespace, graph=graph, extractor=extractor, fuzzy=config.fuzzy)
    idf = _idf(graph, namespace, [e["id"] for e in linked])
    if linked:
        weights = {e["id"]: idf[e["id"]] for e in linked}
        ranked["entity"] = [
            cid for cid, _ in graph.chunks_for_entities(namespace, weights, limit=n, since=since, until=until)
        ]
    ranked["vector"] = pending_vector.result()

    # The bridges start from what the text signals agree on (vector + keyword).
    first = _fuse({signal: ranked[signal] for signal in ("vector", "keyword")}, config)
    graph_ranked, evidence = _graph_expansion(
        namespace, linked, idf, first, graph=graph, config=config, limit=n, since=since, until=until
    )
    if graph_ranked:
        ranked["graph"] = graph_ranked
    fused = _fuse(ranked, config)
    for cid, relation_ids in evidence.items():
        if cid in fused:
            fused[cid].relation_ids = relation_ids
    if config.when_boost and is_when_question(query):
        _favour_dates(fused, graph, config)
    best = sorted(fused.items(), key=lambda item: (-item[1].score, item[0]))[:k]
    return best, linked


def _fuse(ranked: dict[str, list[str]], config: SearchConfig) -> dict[str, _Candidate]:
    fused: dict[str, _Candidate] = defaultdict(_Candidate)
    for signal, ids in ranked.items():
        weight = config.weights.get(signal, 0.0)
        for rank, cid in enumerate(ids):
            candidate = fused[cid]
            candidate.score += weight / (config.rrf_k + rank + 1)
            candidate.reasons.add(signal)
            candidate.ranks[signal] = rank + 1
    return fused


def _idf(graph: GraphStore, namespace: str, entity_ids: list[int]) -> dict[int, float]:
    if not entity_ids:
        return {}
    # BM25's idf: an entity in most chunks (the speaker of a chat) weighs almost nothing.
    total = max(1, graph.chunk_count(namespace))
    df = graph.entity_document_frequency(entity_ids)
    return {eid: math.log(1 + (total - (n := df.get(eid, 1)) + 0.5) / (n + 0.5)) for eid in entity_ids}


def _graph_expansion(
    namespace: str,
    linked: list[dict[str, Any]],
    idf: dict[int, float],
    first: dict[str, _Candidate],
    *,
    graph: GraphStore,
    config: SearchConfig,
    limit: int,
    since: datetime | None,
    until: datetime | None,
) -> tuple[list[str], dict[str, list[int]]]:
    """Chunks reached through the graph, best first, and the relations behind each.

    * Evidence: chunks holding evidence for relations among the query's linked entities.
    * Hop 1 (bridges): the entities named in the best first-stage hits (vector + keyword), other
      than the linked ones, lead to the chunks *about* them (named in their first sentence):
      "the director of film X was born where?" → X's chunk names the director → the director's.
    * Hop 2 (``hops=2``): the relation neighbours of the linked entities lead there as well.
    Fan-out is bounded by ``bridge_hits``, ``bridge_entities`` and ``fanout``.
    """
    chunk_score: dict[str, float] = defaultdict(float)
    chunk_relations: dict[str, list[int]] = defaultdict(list)
    seeds = [e["id"] for e in linked]
    reached: dict[int, float] = defaultdict(float)

    among = {e["relation_id"]: e for e in graph.relations_among(namespace, seeds)}
    for cid, rid in graph.evidence_chunks(list(among), limit=limit, since=since, until=until):
        edge = among[rid]
        chunk_score[cid] += (idf[edge["from"]] + idf[edge["to"]]) * math.log1p(edge["weight"])
        chunk_relations[cid].append(rid)
    if config.hops > 1:
        for edge in graph.neighbours(namespace, seeds, fanout=config.fanout):
            if edge["to"] not in idf:
                reached[edge["to"]] += math.log1p(edge["weight"]) * idf.get(edge["from"], 1.0) / 2

    top = sorted(first.items(), key=lambda item: -item[1].score)[: config.bridge_hits]
    mentions = graph.chunk_mentions([cid for cid, _ in top], labels=NAMED_LABELS | {CONCEPT})
    bridge: dict[int, float] = defaultdict(float)
    for rank, (cid, _) in enumerate(top, 1):
        for eid, _first_sentence in mentions.get(cid, []):
            if eid not in idf:
                bridge[eid] += 1.0 / rank
    if bridge:
        bridge_idf = _idf(graph, namespace, list(bridge))
        for eid, score in bridge.items():
            reached[eid] += score * bridge_idf[eid]

    if reached:
        strongest = dict(sorted(reached.items(), key=lambda kv: (-kv[1], kv[0]))[: config.bridge_entities])
        for cid, score in graph.chunks_for_entities(
            namespace, strongest, limit=limit, salient=True, since=since, until=until
        ):
            chunk_score[cid] += score
    ordered = sorted(chunk_score.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [cid for cid, _ in ordered], {cid: chunk_relations[cid] for cid, _ in ordered if chunk_relations.get(cid)}


def _favour_dates(fused: dict[str, _Candidate], graph: GraphStore, config: SearchConfig) -> None:
    """A "when" question: chunks that carry a DATE gain ``when_boost`` rank-1 shares."""
    dated = graph.chunk_mentions(list(fused), labels=("DATE",))
    bonus = config.when_boost / (config.rrf_k + 1)
    for cid in dated:
        fused[cid].score += bonus


def build_hits(best: list[tuple[str, _Candidate]], graph: GraphStore) -> list[MemoryHit]:
    """MemoryHits for ranked chunk ids, with entities and relations (three batched queries)."""
    ids = [cid for cid, _ in best]
    rows = graph.chunks(ids)
    entities = graph.chunk_entities(ids)
    relations = graph.chunk_relations(ids)
    hits = []
    for cid, candidate in best:
        row = rows.get(cid)
        if row is None:
            continue  # a vector whose chunk is gone: verify(repair=True) removes it
        hits.append(
            MemoryHit(
                chunk_id=cid,
                document_id=row.document_id,
                external_id=row.external_id,
                namespace=row.namespace,
                text=row.text,
                score=round(candidate.score, 6),
                reasons=[s for s in SIGNALS if s in candidate.reasons],
                entities=entities.get(cid, []),
                relations=relations.get(cid, []),
                metadata=row.metadata,
                observed_at=row.observed_at,
            )
        )
    return hits
