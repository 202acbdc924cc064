"""The graph signal: chunks reached through the graph from the query's entities and best hits."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime

from memory_graph.retrieval.config import SearchConfig
from memory_graph.retrieval.fusion import Candidate
from memory_graph.retrieval.reads import SearchReads
from memory_graph.store.reads import group_members
from memory_graph.store.rows import MemberRows
from memory_graph.vocabulary import CONCEPT, NAMED_LABELS


class Expansion:
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
        reads: SearchReads,
        config: SearchConfig,
        limit: int,
        since: datetime | None,
        until: datetime | None,
    ) -> None:
        self.namespace, self.reads, self.config, self.limit = namespace, reads, config, limit
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
            found = self.reads.chunk_mentions(missing, labels=NAMED_LABELS | {CONCEPT})
            self.mentions |= {cid: found.get(cid, []) for cid in missing}
        return {cid: self.mentions[cid] for cid in chunk_ids}

    def read_member_rows(self, entity_ids: list[int]) -> None:
        """The rows ``entity_ids`` stand for, which :meth:`weigh` needs (one query for those not read)."""
        if missing := [e for e in dict.fromkeys(entity_ids) if e not in self.member_rows]:
            self.member_rows |= self.reads.entity_member_rows(missing)

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
        reads, config = self.reads, self.config
        self.members, self.idf = self.weigh(entity_ids)
        idf = self.idf
        among = {e.relation_id: e for e in reads.relations_among(self.namespace, entity_ids, members=self.members)}
        for cid, rid in reads.evidence_chunks(list(among), limit=self.limit, since=self.since, until=self.until):
            edge = among[rid]
            self.chunk_score[cid] += (idf[edge.source] + idf[edge.target]) * math.log1p(edge.weight)
            self.chunk_relations[cid].append(rid)
        if config.hops > 1:
            for n in reads.neighbours(self.namespace, entity_ids, fanout=config.fanout, members=self.members):
                if n.other not in idf:
                    self.reached[n.other] += math.log1p(n.weight) * idf.get(n.entity, 1.0) / 2
        return idf

    def bridge(self, first: dict[str, Candidate]) -> tuple[list[str], dict[str, list[int]]]:
        """Add the bridges from the first-stage hits; the graph-ranked chunk ids, best first,
        and the relations behind each."""
        config = self.config
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
            for cid, score in self.reads.chunks_for_entities(
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
