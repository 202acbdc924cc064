"""The search: signals run, fused and returned as hits with their graph context.

1. The query is embedded by a worker thread while this thread searches it by keyword, links its
   entities and expands the graph around them, and, until the embedding is ready, reads ahead
   what the likeliest hits will need. Chroma is then asked with the embedding.
2. The bridges start from what the text signals agree on (vector + keyword).
3. Weighted reciprocal rank fusion; then questions that ask for a kind of thing favour the
   chunks that name one, and the turns that follow the best hits gain a share of their rank.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from memory_graph.extraction import Extractor
from memory_graph.facts import StateQuestion, state_question
from memory_graph.filters import MetadataFilter, chroma_where
from memory_graph.records import EntityRef, MemoryHit
from memory_graph.retrieval import states
from memory_graph.retrieval.config import BRIDGE_GUESSES, DEFAULT_SEARCH, PREFETCH_BATCH, SearchConfig, answer_labels
from memory_graph.retrieval.expansion import Expansion
from memory_graph.retrieval.fusion import Candidate, favour, fuse
from memory_graph.retrieval.hits import HitContext, HitExplanation, build_hits
from memory_graph.retrieval.linking import link_query_entities
from memory_graph.retrieval.reads import SearchReads
from memory_graph.retrieval.turns import follow_turns
from memory_graph.store import GraphStore
from memory_graph.store.rows import EntityRow
from memory_graph.temporal import end_of, is_when_question, normalize_date
from memory_graph.vector_store import VectorIndex
from memory_graph.vocabulary import DATE

if TYPE_CHECKING:
    from spacy.tokens import Doc

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_THREAD = threading.local()


def embedding_pool() -> ThreadPoolExecutor:
    """The threads that embed queries for the searches of this process, started on first use."""
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="memory-graph-search")
    return _POOL


@dataclass
class Ranking:
    """The outcome of ranking: the best candidates, the query's linked entities, and the hits'
    context read so far."""

    best: list[tuple[str, Candidate]]
    linked: list[EntityRow]
    context: HitContext


class Searcher:
    """Searches one memory: its relational store, its vectors and its extractor, with a config.

    Args:
        graph: the relational store.
        vectors: the vector index.
        extractor: the pipeline that tokenises queries as it tokenised the memories.
        config: signal weights and bounds.
    """

    def __init__(
        self, graph: GraphStore, vectors: VectorIndex, extractor: Extractor, config: SearchConfig = DEFAULT_SEARCH
    ) -> None:
        self.graph = graph
        self.reads = SearchReads(graph)
        self.vectors = vectors
        self.extractor = extractor
        self.config = config

    def search(
        self,
        query: str,
        *,
        namespace: str,
        k: int,
        since: datetime | None = None,
        until: datetime | None = None,
        as_of: datetime | None = None,
        where: MetadataFilter | None = None,
    ) -> list[MemoryHit]:
        """The ``k`` best chunks of ``namespace`` for ``query`` with their graph context, of the
        memories whose metadata ``where`` holds for.

        The arguments are taken as given; :meth:`MemoryManager.search` checks them first.
        """
        with self.graph.reading("searching"):
            ranking = self.rank(query, namespace=namespace, k=k, since=since, until=until, as_of=as_of, where=where)
            return self._hits(ranking, namespace, as_of)

    def explain(
        self,
        query: str,
        *,
        namespace: str,
        k: int,
        since: datetime | None = None,
        until: datetime | None = None,
        as_of: datetime | None = None,
        where: MetadataFilter | None = None,
    ) -> list[HitExplanation]:
        """The hits of :meth:`search` with the evidence of how each was found."""
        with self.graph.reading("searching"):
            ranking = self.rank(query, namespace=namespace, k=k, since=since, until=until, as_of=as_of, where=where)
            hits = self._hits(ranking, namespace, as_of)
        linked_refs = [EntityRef(e.id, e.name, e.label) for e in ranking.linked]
        by_chunk = dict(ranking.best)
        out = []
        for hit in hits:
            candidate = by_chunk[hit.chunk_id]
            wanted = set(candidate.relation_ids)
            out.append(
                HitExplanation(
                    hit=hit,
                    ranks=dict(candidate.ranks),
                    linked_entities=linked_refs,
                    # Co-occurrence too: it is a signal, and the hit says so ("mentioned with").
                    graph_relations=[r for r in ranking.context.relations[hit.chunk_id] if r.id in wanted],
                    gains=dict(candidate.gains),
                )
            )
        return out

    def _hits(self, ranking: Ranking, namespace: str, as_of: datetime | None) -> list[MemoryHit]:
        """The ranked hits, their states' status at ``as_of`` (else now) read for them."""
        context = ranking.context
        context.read([cid for cid, _ in ranking.best])
        context.relations = states.annotate(
            context.relations, graph=self.graph, namespace=namespace, when=as_of or datetime.now(UTC)
        )
        return build_hits(ranking.best, self.graph, namespace=namespace, context=context)

    def rank(
        self,
        query: str,
        *,
        namespace: str,
        k: int,
        since: datetime | None,
        until: datetime | None,
        as_of: datetime | None = None,
        where: MetadataFilter | None = None,
    ) -> Ranking:
        """Run the signals and fuse them (see the module docstring). A ``where`` filter goes down
        to the keyword, entity and vector searches; what the other signals bring is filtered
        before the best are chosen (one statement over the candidates)."""
        reads, config = self.reads, self.config
        n = max(k * config.oversample, config.min_candidates)
        pending_embedding = embedding_pool().submit(_embed_query, self.vectors, query)
        chunks, alone = reads.namespace_chunks(namespace)
        ranked: dict[str, list[str]] = {
            "keyword": [
                cid
                for cid, _ in reads.keyword_search(
                    query, namespace=namespace, limit=n, since=since, until=until, where=where
                )
            ]
        }
        doc = self.extractor.tokenize(query)
        linked = link_query_entities(
            query, namespace=namespace, reads=reads, extractor=self.extractor, fuzzy=config.fuzzy, doc=doc
        )
        expansion = Expansion(namespace, chunks, reads=reads, config=config, limit=n, since=since, until=until)
        if linked:
            idf = expansion.link([e.id for e in linked])
            ranked["entity"] = [
                cid
                for cid, _ in reads.chunks_for_entities(
                    namespace, idf, limit=n, since=since, until=until, members=expansion.members, where=where
                )
            ]
        context = HitContext(self.graph)
        # While the query is being embedded, what the best keyword hits would bridge to and the
        # likeliest hits' context are read, a few at a time.
        if not pending_embedding.done():
            guessed = expansion.read_mentions(ranked["keyword"][:BRIDGE_GUESSES])
            if not pending_embedding.done():
                expansion.read_member_rows(
                    [e for found in guessed.values() for e, _ in found if e not in expansion.idf]
                )
        guesses = [cid for cid, _ in sorted(fuse(ranked, config).items(), key=lambda item: -item[1].score)[:k]]
        for start in range(0, len(guesses), PREFETCH_BATCH):
            if pending_embedding.done():
                break
            context.read(guesses[start : start + PREFETCH_BATCH])
        ranked["vector"] = self._nearest(
            pending_embedding.result(), namespace, n, alone=alone, since=since, until=until, where=where
        )

        # The bridges start from what the text signals agree on (vector + keyword).
        graph_ranked, evidence = expansion.bridge(fuse({s: ranked[s] for s in ("vector", "keyword")}, config))
        if graph_ranked:
            ranked["graph"] = graph_ranked
        fused = fuse(ranked, config)
        for cid, relation_ids in evidence.items():
            if cid in fused:
                fused[cid].relation_ids = relation_ids
        if config.when_boost and is_when_question(query):
            favour(fused, k, config.when_boost / (config.rrf_k + 1), reads.dated_chunks)
        elif config.type_boost and (labels := answer_labels(query)):
            named = {e.id for e in linked} | set(expansion.members)  # the question's own entities
            bonus = config.type_boost / (config.rrf_k + 1)
            favour(fused, k, bonus, lambda chunk_ids: reads.chunks_naming(chunk_ids, labels, besides=named))
        # Following turns extends what was found about the query's subject. A query naming nothing
        # but a date has none: its best hits are the vector signal's guesses, not worth following.
        if config.turn_weight and any(e.label != DATE for e in linked):
            follow_turns(fused, reads, namespace, config, context, since=since, until=until)
        # A question about a value that changes: the statements of the value it asks for first.
        now = datetime.now(UTC)
        question = state_question(query) if config.state_boost else None
        if question is not None and any(ent.label_ == DATE for ent in doc.ents):
            question = state_question(query, dates=_named_times(doc, now))  # dates resolved only when asked
        if question is not None:
            if as_of is not None and question.when == "present":
                question = StateQuestion(question.state, "date", as_of)
            answers = states.answering_statements(
                question, linked, graph=self.graph, namespace=namespace, when=as_of or now,
                query_words={t.lower_ for t in doc},
            )  # fmt: skip
            answers = [s for s in answers if (since is None or s.said >= since) and (until is None or s.said < until)]
            states.favour(fused, answers, config.state_boost / (config.rrf_k + 1))
        if where is not None and fused:
            keep = reads.chunks_matching(list(fused), where)
            fused = {cid: c for cid, c in fused.items() if cid in keep}
        best = sorted(fused.items(), key=lambda item: (-item[1].score, item[0]))[:k]
        return Ranking(best, linked, context)

    def _nearest(
        self,
        embedding: Any,
        namespace: str,
        n: int,
        *,
        alone: bool,
        since: datetime | None,
        until: datetime | None,
        where: MetadataFilter | None = None,
    ) -> list[str]:
        """The ``n`` chunks of ``namespace`` nearest the query. One collection per namespace:
        only the namespace's collection is asked. In the shared collection of a store not yet
        upgraded, Chroma filters on metadata before it searches, at a cost that grows with the
        records kept, so a namespace ``alone`` in the database is searched unfiltered, unless
        that finds a chunk of no namespace's or another's (a collection can also hold vectors
        that another database wrote); then Chroma is asked again, filtered. ``where`` is asked of
        the records' copies of the metadata."""
        metadata = chroma_where(where) if where is not None else None
        shared = bool(getattr(self.vectors, "is_shared", False))
        unfiltered = shared and alone and since is None and until is None and metadata is None
        found = self.vectors.query(
            embedding, namespace=None if unfiltered else namespace, k=n, since=since, until=until, where=metadata
        )
        ids = [cid for cid, _ in found]
        if unfiltered and self.reads.count_in_namespace(namespace, ids) != len(ids):
            ids = [cid for cid, _ in self.vectors.query(embedding, namespace=namespace, k=n, since=since, until=until)]
        return ids


def _named_times(doc: Doc, now: datetime) -> list[datetime]:
    """The times the dates a query names stand for (the middle of "2023", of "March 2025"), not
    "now" or "today": those ask for the present."""
    out = []
    for ent in doc.ents:
        if ent.label_ != DATE or ent.text.lower() in ("now", "today", "these days", "currently", "tonight"):
            continue
        value = normalize_date(ent.text, now)
        if value is not None:
            start = datetime(value.start.year, value.start.month, value.start.day, tzinfo=UTC)
            end = end_of(value)
            out.append(start + (datetime(end.year, end.month, end.day, tzinfo=UTC) - start) / 2)
    return out


def _embed_query(vectors: VectorIndex, query: str) -> Any:
    """In a search thread: the query's embedding. Torch gets one core fewer here than its
    default (:func:`one_core_fewer`): the linking beside it needs one. The forward pass runs
    mostly without the GIL (it takes it back a few times); the Chroma query, whose client is
    Python around Rust, is left to the search's own thread: run here it waited on the read-ahead
    for the GIL."""
    if not getattr(_THREAD, "torch_threads_set", False) and (torch := sys.modules.get("torch")) is not None:
        one_core_fewer(torch)
        _THREAD.torch_threads_set = True
    return vectors.embed([query])[0]


def one_core_fewer(torch: Any) -> None:
    """Give the calling thread's torch one thread fewer than its default, and only this thread's.

    ``torch.set_num_threads`` also sets the count that every thread whose torch starts later
    takes: after a first search, an ``add_many`` in a notebook's main thread would embed with one
    thread fewer. That default is put back from a short-lived thread of its own, which is the
    only other thread the call changes."""
    default = torch.get_num_threads()
    torch.set_num_threads(max(1, default - 1))
    restore = threading.Thread(target=torch.set_num_threads, args=(default,), name="memory-graph-torch-threads")
    restore.start()
    restore.join()
