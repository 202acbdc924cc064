"""Weighted reciprocal rank fusion of the signals, and the gains a hit takes on top of it."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from memory_graph.retrieval.config import SearchConfig


@dataclass
class Candidate:
    """A chunk on its way to being a hit: its fused score, the signals that found it and its
    rank under each, the relations that led to it, and what it gained besides the signals."""

    score: float = 0.0
    reasons: set[str] = field(default_factory=set)
    ranks: dict[str, int] = field(default_factory=dict)
    relation_ids: list[int] = field(default_factory=list)
    gains: dict[str, float] = field(default_factory=dict)  # score added besides the signals' shares


def signal_shares(ranks: dict[str, int], config: SearchConfig) -> dict[str, float]:
    """What each signal adds to a hit's fused score, from the hit's rank under it (1 = best):
    ``weight / (rrf_k + rank)``. The entity and graph signals both come from the entities a chunk
    mentions, so a chunk found by both has one kind of evidence twice: only the larger share counts."""
    shares = {signal: config.weights.get(signal, 0.0) / (config.rrf_k + rank) for signal, rank in ranks.items()}
    if "entity" in shares and "graph" in shares:
        shares[min(("entity", "graph"), key=shares.__getitem__)] = 0.0
    return shares


def fuse(ranked: dict[str, list[str]], config: SearchConfig) -> dict[str, Candidate]:
    """The candidates of ranked lists of chunk ids (best first, by signal), each scored by its
    :func:`signal_shares`."""
    fused: dict[str, Candidate] = defaultdict(Candidate)
    for signal, ids in ranked.items():
        for rank, cid in enumerate(ids, start=1):
            candidate = fused[cid]
            candidate.reasons.add(signal)
            candidate.ranks.setdefault(signal, rank)
    for candidate in fused.values():
        candidate.score = sum(signal_shares(candidate.ranks, config).values())
    return fused


def favour(fused: dict[str, Candidate], k: int, bonus: float, carriers: Callable[[list[str]], Iterable[str]]) -> None:
    """The chunks that carry what the question asks for (``carriers`` of the ids given) gain
    ``bonus``. Only the chunks within one bonus of the k-th best score are looked at: no other
    can reach the top k."""
    scores = sorted((c.score for c in fused.values()), reverse=True)
    floor = scores[k - 1] - bonus if len(scores) > k else -math.inf
    for cid in carriers([cid for cid, c in fused.items() if c.score >= floor]):
        fused[cid].score += bonus
        fused[cid].gains["answer"] = bonus
