"""Query time: vector, keyword, entity and graph signals, fused into ranked hits.

1. Vector search in Chroma and keyword search (BM25 / full-text) in the relational store; the
   query is embedded by a worker thread while it is searched by keyword, linked and expanded,
   and, until its embedding is ready, the context of the likeliest hits is read ahead.
2. Entity linking of the query: tokenised by the same pipeline, its n-grams looked up among the
   namespace's entity names and aliases (longest match wins), capitalised names matched fuzzily on
   canonical names, dates resolved to DATE entities ("last May" → 2025-05) → the chunks that
   mention the linked entities, weighted by how specific each entity is (IDF).
3. Graph expansion with bounded fan-out: relations around the linked entities (their evidence
   chunks, and the chunks *about* their neighbours), and bridges from the best first-stage hits
   through the entities they mention to the chunks about those entities (two-hop questions:
   "the director of film X was born where?" → X's chunk names the director → the director's chunk).
4. Weighted reciprocal rank fusion, where the entity and graph signals, both drawn from the
   entities a chunk mentions, count as one kind of evidence (the stronger of the two).
   Questions that ask for a kind of thing favour chunks that name one: "when" a date, "who" a
   person other than those the question names, "where" or "which city" a place. Each hit
   records which signals found it.
5. Conversations: the turns that follow the best hits gain a share of their rank (an answer
   follows its question, and the question holds the words a search finds). Turns given one
   time (a session imported at once) follow in the order they were written.
"""

from __future__ import annotations

import math
import re
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from memory_graph.extraction import CONCEPT, NAMED_LABELS, Extractor, normalize_key
from memory_graph.graph_store import ChunkRow, GraphStore, MemberRows, group_members
from memory_graph.records import TURN_GAP, EntityRef, MemoryHit, RelationRef, _Serialisable, speaker_of
from memory_graph.temporal import is_when_question, normalize_date
from memory_graph.vector_store import VectorStore

if TYPE_CHECKING:
    from spacy.tokens import Doc, Span

SIGNALS = ("vector", "keyword", "entity", "graph")
MAX_NAME_WORDS = 4  # the longest query n-gram looked up as an entity name
PREFETCH_BATCH = 5  # hits whose context is read at a time while the query is embedded
BRIDGE_GUESSES = 5  # best keyword hits whose mentions are read then (85% of the bridges' seeds on HotpotQA)
# What a question asks for, by its wh-word or the noun after "which"/"what": the labels of the
# entities an answer names. The first pattern that matches wins ("when" questions are temporal's).
ANSWER_TYPES: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = (
    (re.compile(r"\b(who|whom|whose)\b", re.I), frozenset({"PERSON"})),
    (
        re.compile(r"\b(which|what) (city|town|village|country|state|county|region|island|place)\b", re.I),
        frozenset({"LOC"}),
    ),
    (re.compile(r"\bwhere\b", re.I), frozenset({"LOC", "ORG"})),  # a place, or a place named for who runs it
    (
        re.compile(
            r"\b(which|what) (company|organi[sz]ation|firm|business|band|team|club|school|university|agency"
            r"|newspaper|magazine|airline|label)\b",
            re.I,
        ),
        frozenset({"ORG"}),
    ),
    (re.compile(r"\bhow much\b", re.I), frozenset({"MONEY", "PERCENT"})),
)
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="memory-graph-search")
_THREAD = threading.local()


@dataclass(frozen=True)
class SearchConfig:
    """How :func:`search_memories` weighs and bounds its signals."""

    oversample: int = 4  # candidates per signal: k * oversample (at least min_candidates)
    min_candidates: int = 20
    # RRF's constant. The customary 60 suits lists a thousand deep; ours are about 20, where 60
    # leaves rank 1 worth barely more than rank 20 and fusion counts signals rather than ranks.
    rrf_k: int = 10
    weights: dict[str, float] = field(
        default_factory=lambda: {"vector": 1.0, "keyword": 1.0, "entity": 0.8, "graph": 1.0}
    )
    hops: int = 1  # 1: bridges from the best hits; 2: also the relation neighbours of linked entities
    fanout: int = 8  # relations followed per linked entity
    bridge_hits: int = 3  # first-stage hits whose entities seed the bridges
    bridge_entities: int = 12  # entities followed to the chunks about them
    fuzzy: bool = True
    when_boost: float = 1.0  # for "when" questions: chunks with dates gain this many rank-1 shares
    type_boost: float = 0.5  # for "who", "where", "which city"…: chunks naming such an entity gain this many
    # Conversations: the turns that follow the best hits (an answer follows its question).
    turn_seeds: int = 5  # best hits whose following turns gain
    turn_span: int = 2  # turns followed from each
    turn_gap: timedelta = TURN_GAP  # a later turn further away is another conversation
    turn_weight: float = 0.5  # share of the hit's rank a following turn gains
    reply_weight: float = 1.0  # share the reply gains when the hit ends with a question: all of it


DEFAULT_SEARCH = SearchConfig()


@dataclass
class _Candidate:
    score: float = 0.0
    reasons: set[str] = field(default_factory=set)
    ranks: dict[str, int] = field(default_factory=dict)
    relation_ids: list[int] = field(default_factory=list)
    gains: dict[str, float] = field(default_factory=dict)  # score added besides the signals' shares


class _HitContext:
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
class HitExplanation(_Serialisable):
    """Why a hit was retrieved: its rank under each signal (1 = best), the query's linked
    entities, and the relations (graph paths from those entities) whose evidence it holds.
    ``gains`` is what its score gained besides the signals' shares (:func:`signal_shares`):
    ``turn``, following one of the best hits in its conversation, and ``answer``, naming what
    the question asks for (a date for "when", a person for "who"…)."""

    hit: MemoryHit
    ranks: dict[str, int]
    linked_entities: list[EntityRef]
    graph_relations: list[RelationRef]
    gains: dict[str, float] = field(default_factory=dict)


def link_query_entities(
    query: str,
    *,
    namespace: str,
    graph: GraphStore,
    extractor: Extractor,
    fuzzy: bool = True,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Entities of ``namespace`` the query refers to, canonical, in the order the query names them.

    The namespace's entity keys and aliases are the dictionary: every word n-gram of the query
    (keyed as at ingest, the last word also as a noun lemma: "coffee shops" → "coffee shop") is
    looked up in one query, and the longest matches win ("New York City" over "York"). Dates
    come from the pipeline's rule entities, resolved against ``now`` ("last May" → 2025-05) and
    widened to the days or month around them; capitalised names with no exact match are matched
    fuzzily on canonical names. No statistical component runs: a search costs lookups, not a parse.
    """
    doc = extractor.tokenize(query)
    runs = _capitalised_runs(doc)
    # Part of a longer name is not the name: "Scott" alone is some other Scott than "Scott Derrickson".
    part_of_name = {(a, b) for run in runs for a in range(run.start, run.end) for b in range(a + 1, run.end + 1)}
    part_of_name -= {(run.start, run.end) for run in runs}
    lemmas = [extractor.noun_lemma(token) for token in doc]
    spans: dict[tuple[int, int], set[str]] = {}
    for start in range(len(doc)):
        for end in range(start + 1, min(len(doc), start + MAX_NAME_WORDS) + 1):
            token = doc[end - 1]
            if token.is_punct or token.is_space:
                break
            if doc[start].is_stop or token.is_stop or (start, end) in part_of_name:
                continue
            text = doc[start:end].text
            keys = {normalize_key(text)}
            lemma = lemmas[end - 1]
            if lemma != token.lower_:
                keys.add(normalize_key(" ".join([t.lower_ for t in doc[start : end - 1]] + [lemma])))
            spans[(start, end)] = keys
    found = graph.match_keys(namespace, [key for keys in spans.values() for key in keys])
    linked: dict[int, dict[str, Any]] = {}
    covered: set[int] = set()
    named: list[tuple[int, dict[str, Any]]] = []
    for (start, end), keys in sorted(spans.items(), key=lambda item: (item[0][0] - item[0][1], item[0][0])):
        entities = [entity for key in sorted(keys) for entity in found.get(key, [])]
        if entities and covered.isdisjoint(range(start, end)):
            covered.update(range(start, end))
            named += [(start, entity) for entity in entities]
    for _, entity in sorted(named, key=lambda pair: pair[0]):
        linked.setdefault(entity["id"], entity)
    # A month links the days inside it and a day the month around it ("March 2025" ~ 2025-03-13).
    when = now or datetime.now(UTC)
    dates = [value.key for ent in doc.ents if ent.label_ == "DATE" and (value := normalize_date(ent.text, when))]
    for entity in graph.find_dates(namespace, dates) if dates else []:
        linked.setdefault(entity["id"], entity)
    if fuzzy:
        # Only names of two or more capitalised words: a single word ("Nixon") matches too many
        # longer names; unambiguous ones were merged into their full name at ingest already.
        names = [run.text for run in runs if len(run) > 1 and covered.isdisjoint(range(run.start, run.end))]
        for entity in graph.find_entities_fuzzy(namespace, names, limit=10) if names else []:
            linked.setdefault(entity["id"], entity)
    return list(linked.values())


def _capitalised_runs(doc: Doc) -> list[Span]:
    """Maximal runs of capitalised words ("Acme Corp", "Bob Smith")."""
    runs, start = [], None
    for token in [*doc, None]:
        if token is not None and token.is_title and not token.is_stop:
            start = token.i if start is None else start
        elif start is not None:
            runs.append(doc[start : token.i if token is not None else len(doc)])
            start = None
    return runs


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
    with graph.reading():
        best, _, context = _rank(query, namespace=namespace, k=k, graph=graph, vectors=vectors, extractor=extractor,
                                 since=since, until=until, config=config)  # fmt: skip
        return build_hits(best, graph, namespace=namespace, context=context)


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
    with graph.reading():
        best, linked, context = _rank(query, namespace=namespace, k=k, graph=graph, vectors=vectors,
                                      extractor=extractor, since=since, until=until, config=config)  # fmt: skip
        hits = build_hits(best, graph, namespace=namespace, context=context)
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
                gains=dict(candidate.gains),
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
) -> tuple[list[tuple[str, _Candidate]], list[dict[str, Any]], _HitContext]:
    n = max(k * config.oversample, config.min_candidates)
    # The query is embedded by a worker thread while it is searched by keyword, linked and
    # expanded here; Chroma is then asked here too (see _embed_query).
    pending_embedding = _POOL.submit(_embed_query, vectors, query)
    chunks, alone = graph.namespace_chunks(namespace)
    ranked: dict[str, list[str]] = {
        "keyword": [
            cid for cid, _ in graph.keyword_search(query, namespace=namespace, limit=n, since=since, until=until)
        ]
    }
    linked = link_query_entities(query, namespace=namespace, graph=graph, extractor=extractor, fuzzy=config.fuzzy)
    expansion = _Expansion(namespace, chunks, graph=graph, config=config, limit=n, since=since, until=until)
    if linked:
        idf = expansion.link([e["id"] for e in linked])
        ranked["entity"] = [
            cid
            for cid, _ in graph.chunks_for_entities(
                namespace, idf, limit=n, since=since, until=until, members=expansion.members
            )
        ]
    context = _HitContext(graph)
    # While the query is being embedded, what the best keyword hits would bridge to and the
    # likeliest hits' context are read, a few at a time.
    if not pending_embedding.done():
        guessed = expansion.read_mentions(ranked["keyword"][:BRIDGE_GUESSES])
        if not pending_embedding.done():
            expansion.read_member_rows([e for found in guessed.values() for e, _ in found if e not in expansion.idf])
    guesses = [cid for cid, _ in sorted(_fuse(ranked, config).items(), key=lambda item: -item[1].score)[:k]]
    for start in range(0, len(guesses), PREFETCH_BATCH):
        if pending_embedding.done():
            break
        context.read(guesses[start : start + PREFETCH_BATCH])
    ranked["vector"] = _nearest(
        pending_embedding.result(), namespace, n, alone=alone, graph=graph, vectors=vectors, since=since, until=until
    )

    # The bridges start from what the text signals agree on (vector + keyword).
    graph_ranked, evidence = expansion.bridge(_fuse({s: ranked[s] for s in ("vector", "keyword")}, config))
    if graph_ranked:
        ranked["graph"] = graph_ranked
    fused = _fuse(ranked, config)
    for cid, relation_ids in evidence.items():
        if cid in fused:
            fused[cid].relation_ids = relation_ids
    if config.when_boost and is_when_question(query):
        _favour(fused, k, config.when_boost / (config.rrf_k + 1), graph.dated_chunks)
    elif config.type_boost and (labels := answer_labels(query)):
        named = {e["id"] for e in linked} | set(expansion.members)  # the question's own entities
        bonus = config.type_boost / (config.rrf_k + 1)
        _favour(fused, k, bonus, lambda chunk_ids: graph.chunks_naming(chunk_ids, labels, besides=named))
    # Following turns extends what was found about the query's subject. A query naming nothing
    # but a date has none: its best hits are the vector signal's guesses, not worth following.
    if config.turn_weight and any(e["label"] != "DATE" for e in linked):
        _follow_turns(fused, graph, namespace, config, context, since=since, until=until)
    best = sorted(fused.items(), key=lambda item: (-item[1].score, item[0]))[:k]
    return best, linked, context


def _embed_query(vectors: VectorStore, query: str) -> Any:
    """In a search thread: the query's embedding. Torch gets one core fewer here than its
    default (:func:`_one_core_fewer`): the linking beside it needs one. The forward pass runs
    mostly without the GIL (it takes it back about three times); the Chroma query, whose client is
    Python around Rust, is left to the search's own thread: run here it waited on the read-ahead
    for the GIL (+2 ms at the median)."""
    if not getattr(_THREAD, "torch_threads_set", False) and (torch := sys.modules.get("torch")) is not None:
        _one_core_fewer(torch)
        _THREAD.torch_threads_set = True
    return vectors.embed([query])[0]


def _one_core_fewer(torch: Any) -> None:
    """Give the calling thread's torch one thread fewer than its default, and only this thread's.

    ``torch.set_num_threads`` also sets the count that every thread whose torch starts later
    takes: after a first search, an ``add_many`` in a notebook's main thread embedded with one
    thread instead of two (22% slower). That default is put back from a short-lived thread of
    its own, which is the only other thread the call changes."""
    default = torch.get_num_threads()
    torch.set_num_threads(max(1, default - 1))
    restore = threading.Thread(target=torch.set_num_threads, args=(default,), name="memory-graph-torch-threads")
    restore.start()
    restore.join()


def _nearest(
    embedding: Any,
    namespace: str,
    n: int,
    *,
    alone: bool,
    graph: GraphStore,
    vectors: VectorStore,
    since: datetime | None,
    until: datetime | None,
) -> list[str]:
    """The ``n`` chunks of ``namespace`` nearest the query. Chroma filters on metadata before it
    searches, at a cost that grows with the records kept (16 ms for 5,800 against 1 ms
    unfiltered, chromadb 1.5), so a namespace ``alone`` in the database is searched unfiltered,
    unless that finds a chunk of no namespace's or another's (a collection can also hold vectors
    that another database wrote); then Chroma is asked again, filtered."""
    unfiltered = alone and since is None and until is None
    found = vectors.query(embedding, namespace=None if unfiltered else namespace, k=n, since=since, until=until)
    ids = [cid for cid, _ in found]
    if unfiltered and graph.count_in_namespace(namespace, ids) != len(ids):
        ids = [cid for cid, _ in vectors.query(embedding, namespace=namespace, k=n, since=since, until=until)]
    return ids


def signal_shares(ranks: dict[str, int], config: SearchConfig) -> dict[str, float]:
    """What each signal adds to a hit's fused score, from the hit's rank under it (1 = best):
    ``weight / (rrf_k + rank)``. The entity and graph signals both come from the entities a chunk
    mentions, so a chunk found by both has one kind of evidence twice: only the larger share counts."""
    shares = {signal: config.weights.get(signal, 0.0) / (config.rrf_k + rank) for signal, rank in ranks.items()}
    if "entity" in shares and "graph" in shares:
        shares[min(("entity", "graph"), key=shares.__getitem__)] = 0.0
    return shares


def _fuse(ranked: dict[str, list[str]], config: SearchConfig) -> dict[str, _Candidate]:
    fused: dict[str, _Candidate] = defaultdict(_Candidate)
    for signal, ids in ranked.items():
        for rank, cid in enumerate(ids, start=1):
            candidate = fused[cid]
            candidate.reasons.add(signal)
            candidate.ranks.setdefault(signal, rank)
    for candidate in fused.values():
        candidate.score = sum(signal_shares(candidate.ranks, config).values())
    return fused


class _Expansion:
    """The graph signal: chunks reached through the graph, and the relations behind each.

    * Evidence (:meth:`link`): chunks holding evidence for relations among the query's linked
      entities; with ``hops=2``, the relation neighbours of those entities are followed as well.
    * Bridges (:meth:`bridge`): the entities named in the best first-stage hits (vector +
      keyword), other than the linked ones, lead to the chunks *about* them (named in their first
      sentence): "the director of film X was born where?" → X's chunk names the director → the
      director's chunk.
    Fan-out is bounded by ``bridge_hits``, ``bridge_entities`` and ``fanout``. :meth:`link`
    needs only the query, so it runs while the text searches are still under way.
    """

    def __init__(
        self,
        namespace: str,
        chunks: int,
        *,
        graph: GraphStore,
        config: SearchConfig,
        limit: int,
        since: datetime | None,
        until: datetime | None,
    ) -> None:
        self.namespace, self.graph, self.config, self.limit = namespace, graph, config, limit
        self.since, self.until = since, until
        self.members: dict[int, int] = {}
        self.idf: dict[int, float] = {}
        self.chunk_score: dict[str, float] = defaultdict(float)
        self.chunk_relations: dict[str, list[int]] = defaultdict(list)
        self.reached: dict[int, float] = defaultdict(float)
        self.chunks = max(1, chunks)  # of the namespace, for IDF
        self.mentions: dict[str, list[tuple[int, bool]]] = {}  # the named and concept entities of chunks read
        self.member_rows: dict[int, MemberRows] = {}  # the rows of each entity weighed or read ahead

    def read_mentions(self, chunk_ids: list[str]) -> dict[str, list[tuple[int, bool]]]:
        """The entities the bridges may follow from ``chunk_ids`` (one query for those not read)."""
        if missing := [cid for cid in chunk_ids if cid not in self.mentions]:
            found = self.graph.chunk_mentions(missing, labels=NAMED_LABELS | {CONCEPT})
            self.mentions |= {cid: found.get(cid, []) for cid in missing}
        return {cid: self.mentions[cid] for cid in chunk_ids}

    def read_member_rows(self, entity_ids: list[int]) -> None:
        """The rows ``entity_ids`` stand for, which :meth:`weigh` needs (one query for those not read)."""
        if missing := [e for e in dict.fromkeys(entity_ids) if e not in self.member_rows]:
            self.member_rows |= self.graph.entity_member_rows(missing)

    def weigh(self, entity_ids: list[int]) -> tuple[dict[int, int], dict[int, float]]:
        """The rows standing for ``entity_ids`` and each entity's IDF: BM25's, over the namespace's
        chunks, with the entity's stored mention count (at most the chunk count) for its frequency.
        An entity in most chunks, the speaker of a chat, weighs almost nothing."""
        self.read_member_rows(entity_ids)
        members, counts = group_members(entity_ids, self.member_rows)
        total = self.chunks
        return members, {
            e: math.log(1 + (total - (n := min(counts.get(e, 1), total)) + 0.5) / (n + 0.5)) for e in entity_ids
        }

    def link(self, entity_ids: list[int]) -> dict[int, float]:
        """Start from the query's linked entities; returns their IDF weights."""
        graph, config = self.graph, self.config
        self.members, self.idf = self.weigh(entity_ids)
        idf = self.idf
        among = {e["relation_id"]: e for e in graph.relations_among(self.namespace, entity_ids, members=self.members)}
        for cid, rid in graph.evidence_chunks(list(among), limit=self.limit, since=self.since, until=self.until):
            edge = among[rid]
            self.chunk_score[cid] += (idf[edge["from"]] + idf[edge["to"]]) * math.log1p(edge["weight"])
            self.chunk_relations[cid].append(rid)
        if config.hops > 1:
            for edge in graph.neighbours(self.namespace, entity_ids, fanout=config.fanout, members=self.members):
                if edge["to"] not in idf:
                    self.reached[edge["to"]] += math.log1p(edge["weight"]) * idf.get(edge["from"], 1.0) / 2
        return idf

    def bridge(self, first: dict[str, _Candidate]) -> tuple[list[str], dict[str, list[int]]]:
        """Add the bridges from the first-stage hits; the graph-ranked chunk ids, best first,
        and the relations behind each."""
        graph, config = self.graph, self.config
        top = sorted(first.items(), key=lambda item: -item[1].score)[: config.bridge_hits]
        mentions = self.read_mentions([cid for cid, _ in top])
        bridge: dict[int, float] = defaultdict(float)
        for rank, (cid, _) in enumerate(top, 1):
            for eid, _first_sentence in mentions.get(cid, []):
                if eid not in self.idf:
                    bridge[eid] += 1.0 / rank
        members: dict[int, int] = {}
        if bridge:
            members, bridge_idf = self.weigh(list(bridge))
            for eid, score in bridge.items():
                self.reached[eid] += score * bridge_idf[eid]
        if self.reached:
            strongest = dict(sorted(self.reached.items(), key=lambda kv: (-kv[1], kv[0]))[: config.bridge_entities])
            for cid, score in graph.chunks_for_entities(
                self.namespace,
                strongest,
                limit=self.limit,
                salient=True,
                since=self.since,
                until=self.until,
                members=members if strongest.keys() <= bridge.keys() else None,
            ):
                self.chunk_score[cid] += score
        ordered = sorted(self.chunk_score.items(), key=lambda kv: (-kv[1], kv[0]))[: self.limit]
        relations = self.chunk_relations
        return [cid for cid, _ in ordered], {cid: relations[cid] for cid, _ in ordered if relations.get(cid)}


def answer_labels(query: str) -> frozenset[str]:
    """The entity labels an answer to ``query`` names (:data:`ANSWER_TYPES`); empty if it asks
    for no kind of entity. "When" questions are :func:`~memory_graph.temporal.is_when_question`'s."""
    return next((labels for pattern, labels in ANSWER_TYPES if pattern.search(query)), frozenset())


def _favour(fused: dict[str, _Candidate], k: int, bonus: float, carriers: Callable[[list[str]], Iterable[str]]) -> None:
    """The chunks that carry what the question asks for (``carriers`` of the ids given) gain
    ``bonus``. Only the chunks within one bonus of the k-th best score are looked at: no other
    can reach the top k."""
    scores = sorted((c.score for c in fused.values()), reverse=True)
    floor = scores[k - 1] - bonus if len(scores) > k else -math.inf
    for cid in carriers([cid for cid, c in fused.items() if c.score >= floor]):
        fused[cid].score += bonus
        fused[cid].gains["answer"] = bonus


def _follow_turns(
    fused: dict[str, _Candidate],
    graph: GraphStore,
    namespace: str,
    config: SearchConfig,
    context: _HitContext,
    *,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """In a conversation the answer often follows the turn that holds the question's words
    ("Which piece are you showing?" -> "A set of four stacking bowls…"). The next ``turn_span``
    turns after each of the ``turn_seeds`` best hits that is a turn (its memory names a speaker)
    gain ``turn_weight`` shares of that hit's rank, one rank less for each step; the next turn
    after a hit that ends with a question, its reply, gains ``reply_weight`` shares: a question
    and its answer are one exchange, found by the question's words. A turn reached from several
    hits keeps the largest. Found this way counts as a graph reason: the turn order is the
    conversation's structure. The seeds' rows are read into ``context``."""
    seeds = sorted(fused.items(), key=lambda item: (-item[1].score, item[0]))[: config.turn_seeds]
    rows = context.read_rows([cid for cid, _ in seeds])
    turns = [(rank, rows[cid]) for rank, (cid, _) in enumerate(seeds, 1) if cid in rows]
    turns = [(rank, row) for rank, row in turns if row.observed_at is not None and speaker_of(row.metadata)]
    if not turns:
        return
    following = graph.turns_after(
        namespace, [row for _, row in turns], span=config.turn_span, gap=config.turn_gap, since=since, until=until
    )
    gains: dict[str, tuple[float, int]] = {}
    for (rank, row), after in zip(turns, following, strict=True):
        asks = row.text.rstrip().endswith("?")
        for step, cid in enumerate(after):
            weight = config.reply_weight if asks and step == 0 else config.turn_weight
            share = weight / (config.rrf_k + rank + step)
            if share > gains.get(cid, (0.0, 0))[0]:
                gains[cid] = (share, rank + step)
    for cid, (share, rank) in gains.items():
        candidate = fused.setdefault(cid, _Candidate())  # a turn no signal found enters with its share
        candidate.score += share
        candidate.gains["turn"] = share
        candidate.reasons.add("graph")
        candidate.ranks["turn"] = rank


def build_hits(
    best: list[tuple[str, _Candidate]],
    graph: GraphStore,
    *,
    namespace: str,
    context: _HitContext | None = None,
) -> list[MemoryHit]:
    """MemoryHits for ranked chunk ids, with entities and relations (three batched queries for
    what ``context`` has not read already)."""
    context = context or _HitContext(graph)
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
                relations=context.relations[cid],
                metadata=row.metadata,
                observed_at=row.observed_at,
            )
        )
    return hits
