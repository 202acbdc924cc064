"""Conversations: the turns that follow the best hits gain a share of their rank."""

from __future__ import annotations

from datetime import datetime

from memory_graph.retrieval.config import SearchConfig
from memory_graph.retrieval.fusion import Candidate
from memory_graph.retrieval.hits import HitContext
from memory_graph.retrieval.reads import SearchReads
from memory_graph.vocabulary import speaker_of


def follow_turns(
    fused: dict[str, Candidate],
    reads: SearchReads,
    namespace: str,
    config: SearchConfig,
    context: HitContext,
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
    following = reads.turns_after(
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
        candidate = fused.setdefault(cid, Candidate())  # a turn no signal found enters with its share
        candidate.score += share
        candidate.gains["turn"] = share
        candidate.reasons.add("graph")
        candidate.ranks["turn"] = rank
